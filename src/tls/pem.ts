// Certificate and key files, checked the way a TLS library will use them, so a bad file is refused by `leaky
// validate`, at start and on reload with "FILE: reason" instead of uWS's bare "App construction failed" (it says
// neither which file nor why) or an undici error on the first request. A reload that fails here keeps the running
// certificates. node:crypto (OpenSSL 3) reads the same PEM that uWS (BoringSSL) and node:tls read.
import { createHash, createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto'
import { readFileSync } from 'node:fs'

export interface PemIssue {
  /** the config key naming the file (e.g. ['tls', 'key']) */
  path: (string | number)[]
  message: string
}

type Read = { ok: true; data: Buffer } | { ok: false; message: string }

function read(file: string): Read {
  try {
    return { ok: true, data: readFileSync(file) }
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    const why = e.code === 'ENOENT' ? 'no such file' : e.code === 'EACCES' ? 'permission denied' : e.code === 'EISDIR' ? 'is a directory' : e.message
    return { ok: false, message: `${file}: ${why}` }
  }
}

/** The certificates of a PEM file (leaf first); none → the reason. */
function certs(file: string, data: Buffer): { ok: true; list: X509Certificate[] } | { ok: false; message: string } {
  const blocks = data.toString('latin1').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []
  if (blocks.length === 0) return { ok: false, message: `${file}: no PEM certificate in the file` }
  const list: X509Certificate[] = []
  for (const b of blocks) {
    try {
      list.push(new X509Certificate(b))
    } catch (err) {
      return { ok: false, message: `${file}: not a valid certificate (${(err as Error).message})` }
    }
  }
  return { ok: true, list }
}

function privateKey(file: string, data: Buffer, passphrase: string | undefined): { ok: true; key: KeyObject } | { ok: false; message: string } {
  try {
    return { ok: true, key: createPrivateKey({ key: data, format: 'pem', passphrase }) }
  } catch (err) {
    const { code = '', message } = err as NodeJS.ErrnoException
    // OpenSSL 3 reports a missing passphrase as an interrupted password callback
    if (code === 'ERR_MISSING_PASSPHRASE' || code === 'ERR_OSSL_CRYPTO_INTERRUPTED_OR_CANCELLED') {
      return { ok: false, message: `${file}: the key is encrypted and no passphrase is set` }
    }
    if (code === 'ERR_OSSL_BAD_DECRYPT') return { ok: false, message: `${file}: wrong passphrase` }
    // a wrong passphrase decrypts to garbage whose CBC padding still checks out about once in 256 tries: then OpenSSL
    // fails decoding it ("unsupported") instead — for an encrypted key with a passphrase set, that is the passphrase too
    if (passphrase !== undefined && isEncryptedPem(data)) return { ok: false, message: `${file}: wrong passphrase` }
    return { ok: false, message: `${file}: not a PEM private key (${message})` }
  }
}

function isEncryptedPem(data: Buffer): boolean {
  const text = data.toString('latin1')
  return text.includes('-----BEGIN ENCRYPTED PRIVATE KEY-----') || text.includes('Proc-Type: 4,ENCRYPTED')
}

export interface PairFiles {
  cert: string
  key: string
  passphrase?: string
}

/** A certificate file and its key: readable, parseable, the key decrypts and belongs to the (leaf) certificate. */
export function checkPair(at: (string | number)[], f: PairFiles): PemIssue[] {
  const c = read(f.cert)
  const k = read(f.key)
  const out: PemIssue[] = []
  if (!c.ok) out.push({ path: [...at, 'cert'], message: c.message })
  if (!k.ok) out.push({ path: [...at, 'key'], message: k.message })
  if (!c.ok || !k.ok) return out
  const chain = certs(f.cert, c.data)
  if (!chain.ok) return [{ path: [...at, 'cert'], message: chain.message }]
  const key = privateKey(f.key, k.data, f.passphrase)
  if (!key.ok) return [{ path: [...at, key.message.endsWith(': wrong passphrase') ? 'passphrase' : 'key'], message: key.message }]
  if (!chain.list[0].checkPrivateKey(key.key)) {
    return [{ path: [...at, 'key'], message: `${f.key}: does not match the certificate in ${f.cert} (subject ${chain.list[0].subject.replace(/\n/g, ', ')})` }]
  }
  return []
}

/** A CA bundle: readable, with at least one certificate. */
export function checkCa(at: (string | number)[], file: string): PemIssue[] {
  const c = read(file)
  if (!c.ok) return [{ path: at, message: c.message }]
  const list = certs(file, c.data)
  return list.ok ? [] : [{ path: at, message: list.message }]
}

/** Subject, serial and expiry of the leaf certificate in a PEM file, or null when it cannot be read. */
export function describeCertificate(file: string): { subject: string; serial: string; notAfter: number } | null {
  const r = read(file)
  if (!r.ok) return null
  const c = certs(file, r.data)
  if (!c.ok) return null
  const leaf = c.list[0]
  return { subject: leaf.subject.replace(/\n/g, ', '), serial: leaf.serialNumber, notAfter: Date.parse(leaf.validTo) }
}

/**
 * A digest of the files' contents (missing files count as empty): a reload rebuilds a TLS context only when what
 * it would load differs from what is loaded, whether the paths or the files behind them changed.
 */
export function filesDigest(files: readonly (string | undefined)[], extra = ''): string {
  const h = createHash('sha256').update(extra)
  for (const f of files) {
    h.update('\0')
    if (f === undefined) continue
    h.update(f)
    const r = read(f)
    if (r.ok) h.update(r.data)
  }
  return h.digest('hex')
}
