// Real certificates for TLS tests, made by the openssl CLI in this test file's scratch directory (removed with it):
// a test CA, server certificates for localhost/127.0.0.1 (two, for rotation), a server certificate for the wrong
// host, client certificates signed by the CA and one self-signed (unknown to the CA), and an encrypted key.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { SCRATCH_TMP } from './scratch.js'

export interface Pair {
  cert: string
  key: string
}

export interface Certs {
  dir: string
  ca: string
  /** CN=localhost, SAN DNS:localhost IP:127.0.0.1 */
  server: Pair
  /** the same names, another key and serial: what a rotation installs */
  server2: Pair
  /** CN=wrong.example, SAN DNS:wrong.example — signed by the CA, for another host */
  wrongHost: Pair
  /** CN=team-a, SAN URI:spiffe://test/team-a, signed by the CA */
  client: Pair
  /** CN=rogue, self-signed: no chain to the CA */
  rogue: Pair
  /** server's key encrypted with PASSPHRASE */
  serverKeyEncrypted: string
  passphrase: string
}

function openssl(dir: string, args: string[]): void {
  const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.stderr}`)
}

function leaf(dir: string, name: string, subject: string, san: string | null, signed: boolean): Pair {
  const key = path.join(dir, `${name}.key`)
  const cert = path.join(dir, `${name}.crt`)
  openssl(dir, ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key])
  if (!signed) {
    openssl(dir, ['req', '-x509', '-new', '-key', key, '-out', cert, '-days', '30', '-subj', subject])
    return { cert, key }
  }
  const csr = path.join(dir, `${name}.csr`)
  openssl(dir, ['req', '-new', '-key', key, '-out', csr, '-subj', subject])
  const ext = path.join(dir, `${name}.ext`)
  writeFileSync(ext, san === null ? 'basicConstraints=CA:FALSE\n' : `basicConstraints=CA:FALSE\nsubjectAltName=${san}\n`)
  openssl(dir, ['x509', '-req', '-in', csr, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', cert, '-days', '30', '-extfile', ext])
  return { cert, key }
}

export function makeCerts(): Certs {
  const dir = mkdtempSync(path.join(SCRATCH_TMP, 'certs-'))
  openssl(dir, ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'ca.key'])
  openssl(dir, ['req', '-x509', '-new', '-key', 'ca.key', '-out', 'ca.crt', '-days', '30', '-subj', '/CN=leaky test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'])
  const server = leaf(dir, 'server', '/CN=localhost', 'DNS:localhost,IP:127.0.0.1', true)
  const server2 = leaf(dir, 'server2', '/CN=localhost', 'DNS:localhost,IP:127.0.0.1', true)
  const wrongHost = leaf(dir, 'wrong', '/CN=wrong.example', 'DNS:wrong.example', true)
  const client = leaf(dir, 'client', '/CN=team-a', 'URI:spiffe://test/team-a', true)
  const rogue = leaf(dir, 'rogue', '/CN=rogue', null, false)
  const passphrase = 'correct horse battery staple'
  const serverKeyEncrypted = path.join(dir, 'server-enc.key')
  openssl(dir, ['pkcs8', '-topk8', '-in', server.key, '-out', serverKeyEncrypted, '-v2', 'aes-256-cbc', '-passout', `pass:${passphrase}`])
  return { dir, ca: path.join(dir, 'ca.crt'), server, server2, wrongHost, client, rogue, serverKeyEncrypted, passphrase }
}

/** The serial number of a PEM certificate file, as node:tls reports it (upper-case hex). */
export function serialOf(certFile: string): string {
  const r = spawnSync('openssl', ['x509', '-noout', '-serial', '-in', certFile], { encoding: 'utf8' })
  return r.stdout.trim().replace(/^serial=/, '').toUpperCase()
}

export function read(file: string): Buffer {
  return readFileSync(file)
}
