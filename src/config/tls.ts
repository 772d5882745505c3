// The TLS files a config names, checked after the schema has passed (they are file contents, not YAML): every
// certificate, key and CA the proxy listener, the admin listener and the upstreams would load. Also the one
// cross-field rule of upstream tls: it only means something for https:// targets.
import { checkCa, checkPair, type PemIssue } from '../tls/pem.js'
import type { Config } from './schema.js'

/** Every TLS file the config names (a certificate renewed on disk is a reason to reload under `watch`). */
export function tlsFiles(config: Config): string[] {
  const out: string[] = []
  for (const t of [config.tls, config.admin.tls]) if (t !== undefined) out.push(t.cert, t.key, ...(t.client_ca === undefined ? [] : [t.client_ca]))
  for (const u of Object.values(config.upstreams)) {
    const t = u.tls
    if (t === undefined) continue
    for (const f of [t.ca, t.cert, t.key]) if (f !== undefined) out.push(f)
  }
  return out
}

export function checkTlsFiles(config: Config): PemIssue[] {
  const out: PemIssue[] = []
  if (config.listen_plain !== undefined && samePort(config.listen, config.listen_plain)) {
    // uWS binds with SO_REUSEPORT: both listeners would share the port and the kernel would split connections
    // between TLS and plain at random
    out.push({ path: ['listen_plain'], message: `must be another port than listen (${config.listen})` })
  }
  const listener = (at: string[], t: Config['tls']) => {
    if (t === undefined) return
    out.push(...checkPair(at, t))
    if (t.client_ca !== undefined) out.push(...checkCa([...at, 'client_ca'], t.client_ca))
  }
  listener(['tls'], config.tls)
  listener(['admin', 'tls'], config.admin.tls)
  for (const [name, u] of Object.entries(config.upstreams)) {
    const t = u.tls
    if (t === undefined) continue
    const at = ['upstreams', name, 'tls']
    if (!u.targets.some((x) => x.startsWith('https://'))) {
      out.push({ path: at, message: 'tls applies to https:// targets, and this upstream has none' })
      continue
    }
    if (t.ca !== undefined) out.push(...checkCa([...at, 'ca'], t.ca))
    if ((t.cert === undefined) !== (t.key === undefined)) {
      out.push({ path: [...at, t.cert === undefined ? 'key' : 'cert'], message: 'set both cert and key (a client certificate for the upstream), or neither' })
    } else if (t.cert !== undefined && t.key !== undefined) {
      out.push(...checkPair(at, { cert: t.cert, key: t.key, passphrase: t.passphrase }))
    }
  }
  return out
}

function samePort(a: string, b: string): boolean {
  const port = (l: string) => l.slice(l.lastIndexOf(':') + 1)
  const host = (l: string) => l.slice(0, l.lastIndexOf(':')).replace(/^\[|\]$/g, '')
  if (port(a) !== port(b) || port(a) === '0') return false
  const wild = (h: string) => h === '' || h === '0.0.0.0' || h === '::'
  return host(a) === host(b) || wild(host(a)) || wild(host(b))
}
