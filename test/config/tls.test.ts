// TLS settings in, ok or `file:line:col path: FILE: reason` out. Certificates are real, made by openssl in the
// scratch dir (helpers/certs.ts); each case names files that are missing, unreadable, not PEM, mismatched or
// encrypted, and the settings this uWS build cannot honour on the proxy listener.
import t from 'tap'
import { chmodSync, writeFileSync } from 'node:fs'
import { parseConfig, formatIssue } from '../../src/config/index.js'
import { makeCerts } from '../helpers/certs.js'
import { checkPair } from '../../src/tls/pem.js'

const c = makeCerts()
const junk = `${c.dir}/junk.pem`
writeFileSync(junk, 'hello\n')
const locked = `${c.dir}/locked.key`
writeFileSync(locked, 'x')
chmodSync(locked, 0o000)
const asRoot = process.getuid?.() === 0

/** `c.yaml:LINE:COL` of the first `needle` in the YAML (1-based), as the loader reports positions. */
function at(yaml: string, needle: string, from = 0): string {
  const i = yaml.indexOf(needle, from)
  const before = yaml.slice(0, i).split('\n')
  return `c.yaml:${before.length}:${before.at(-1)!.length + 1}`
}

function load(yaml: string): 'ok' | string[] {
  const r = parseConfig(yaml, 'c.yaml', { PASS: c.passphrase, BAD: 'nope' })
  return r.ok ? 'ok' : r.issues.map(formatIssue)
}

type Want = 'ok' | ((y: string) => string[])
const cases: Array<{ name: string; yaml: string; want: Want; skip?: boolean }> = [
  { name: 'cert and key that belong together', yaml: `tls: { cert: ${c.server.cert}, key: ${c.server.key} }\n`, want: 'ok' },
  { name: 'encrypted key with its passphrase', yaml: `tls: { cert: ${c.server.cert}, key: ${c.serverKeyEncrypted}, passphrase: "\${env:PASS}" }\n`, want: 'ok' },
  { name: 'client_ca (client_cert defaults to optional)', yaml: `tls: { cert: ${c.server.cert}, key: ${c.server.key}, client_ca: ${c.ca} }\nlisten_plain: 127.0.0.1:8081\n`, want: 'ok' },
  { name: 'missing cert file', yaml: `tls: { cert: ${c.dir}/nope.crt, key: ${c.server.key} }\n`, want: (y) => [`${at(y, `${c.dir}/nope`)} tls.cert: ${c.dir}/nope.crt: no such file`] },
  {
    name: 'unreadable key', skip: asRoot, yaml: `tls: { cert: ${c.server.cert}, key: ${locked} }\n`,
    want: (y) => [`${at(y, locked)} tls.key: ${locked}: permission denied`],
  },
  { name: 'not a certificate', yaml: `tls: { cert: ${junk}, key: ${c.server.key} }\n`, want: (y) => [`${at(y, junk)} tls.cert: ${junk}: no PEM certificate in the file`] },
  {
    name: 'key of another certificate', yaml: `tls: { cert: ${c.server.cert}, key: ${c.server2.key} }\n`,
    want: (y) => [`${at(y, c.server2.key)} tls.key: ${c.server2.key}: does not match the certificate in ${c.server.cert} (subject CN=localhost)`],
  },
  {
    name: 'encrypted key, no passphrase', yaml: `tls: { cert: ${c.server.cert}, key: ${c.serverKeyEncrypted} }\n`,
    want: (y) => [`${at(y, c.serverKeyEncrypted)} tls.key: ${c.serverKeyEncrypted}: the key is encrypted and no passphrase is set`],
  },
  {
    name: 'wrong passphrase', yaml: `tls: { cert: ${c.server.cert}, key: ${c.serverKeyEncrypted}, passphrase: "\${env:BAD}" }\n`,
    want: (y) => [`${at(y, '"${env:BAD}"')} tls.passphrase: ${c.serverKeyEncrypted}: wrong passphrase`],
  },
  {
    name: 'require on the proxy listener', yaml: `tls: { cert: ${c.server.cert}, key: ${c.server.key}, client_ca: ${c.ca}, client_cert: require }\n`,
    want: (y) => [`${at(y, 'require')} tls.client_cert: require is not possible on the proxy listener: uWebSockets.js 20.30 verifies a client certificate when one is sent (a bad one is refused in the handshake) but cannot refuse a client that sends none; use optional`],
  },
  {
    name: 'TLSv1.3 minimum on the proxy listener', yaml: `tls: { cert: ${c.server.cert}, key: ${c.server.key}, min_version: TLSv1.3 }\n`,
    want: (y) => [`${at(y, 'TLSv1.3')} tls.min_version: the proxy listener (uWebSockets.js 20.30 SSLApp) has no minimum-version setting: it accepts TLS 1.2 and 1.3, fixed in uSockets`],
  },
  {
    name: 'client_cert without client_ca', yaml: `admin: { tls: { cert: ${c.server.cert}, key: ${c.server.key}, client_cert: require } }\n`,
    want: (y) => [`${at(y, 'require')} admin.tls.client_cert: client_cert needs client_ca (the CAs to verify client certificates with)`],
  },
  { name: 'admin: require and TLSv1.3 are fine (node:https)', yaml: `admin: { tls: { cert: ${c.server.cert}, key: ${c.server.key}, client_ca: ${c.ca}, client_cert: require, min_version: TLSv1.3 } }\n`, want: 'ok' },
  {
    name: 'upstream tls on http:// targets only',
    yaml: `upstreams:\n  u: { targets: ["http://127.0.0.1:1"], tls: { ca: ${c.ca} } }\n`,
    want: (y) => [`${at(y, '{ ca')} upstreams.u.tls: tls applies to https:// targets, and this upstream has none`],
  },
  {
    name: 'upstream client cert without key',
    yaml: `upstreams:\n  u: { targets: ["https://127.0.0.1:1"], tls: { cert: ${c.client.cert} } }\n`,
    want: (y) => [`${at(y, c.client.cert)} upstreams.u.tls.cert: set both cert and key (a client certificate for the upstream), or neither`],
  },
  {
    name: 'upstream: missing CA file, mismatched client pair',
    yaml: `upstreams:\n  u: { targets: ["https://127.0.0.1:1"], tls: { ca: ${c.dir}/no-ca.pem, cert: ${c.client.cert}, key: ${c.server.key} } }\n`,
    want: (y) => [
      `${at(y, `${c.dir}/no-ca`)} upstreams.u.tls.ca: ${c.dir}/no-ca.pem: no such file`,
      `${at(y, c.server.key)} upstreams.u.tls.key: ${c.server.key}: does not match the certificate in ${c.client.cert} (subject CN=team-a)`,
    ],
  },
  {
    name: 'upstream: a full mutual-TLS setup and insecure_skip_verify are accepted',
    yaml: `upstreams:\n  u: { targets: ["https://127.0.0.1:1"], tls: { ca: ${c.ca}, servername: localhost, cert: ${c.client.cert}, key: ${c.client.key} } }\n  v: { targets: ["https://127.0.0.1:2"], tls: { insecure_skip_verify: true } }\n`,
    want: 'ok',
  },
  {
    name: 'listen_plain on the port of listen', yaml: `listen: 127.0.0.1:8443\nlisten_plain: 0.0.0.0:8443\ntls: { cert: ${c.server.cert}, key: ${c.server.key} }\n`,
    want: (y) => [`${at(y, '0.0.0.0:8443')} listen_plain: must be another port than listen (127.0.0.1:8443)`],
  },
  {
    name: 'unknown key in tls, with a suggestion', yaml: `tls: { cert: ${c.server.cert}, key: ${c.server.key}, clientca: x }\n`,
    want: (y) => [`${at(y, 'clientca')} tls.clientca: unknown key "clientca" (did you mean "client_ca"?)`],
  },
]

for (const k of cases) {
  t.test(k.name, { skip: k.skip === true ? 'running as root: permissions do not stop reads' : false }, async (t) => {
    t.same(load(k.yaml), k.want === 'ok' ? 'ok' : k.want(k.yaml))
  })
}

t.test('a wrong passphrase is named as such every time, also when OpenSSL fails decoding instead of decrypting', async (t) => {
  // a wrong passphrase decrypts to garbage whose padding still checks out about once in 256 tries; OpenSSL then says
  // "unsupported" (decoder) rather than "bad decrypt": 1000 wrong passphrases meet that case with probability ~98 %
  const issues = new Map<string, number>()
  for (let i = 0; i < 1000; i++) {
    for (const issue of checkPair(['tls'], { cert: c.server.cert, key: c.serverKeyEncrypted, passphrase: `wrong-${i}` })) {
      const m = `${issue.path.join('.')}: ${issue.message.slice(c.serverKeyEncrypted.length + 2)}`
      issues.set(m, (issues.get(m) ?? 0) + 1)
    }
  }
  t.same([...issues], [['tls.passphrase: wrong passphrase', 1000]])
})
