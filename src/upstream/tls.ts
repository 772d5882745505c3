// TLS towards an upstream: the options undici hands to tls.connect for https:// targets. Verification is always
// on (Node's bundled CA list, plus NODE_EXTRA_CA_CERTS) unless the config says insecure_skip_verify; `ca` replaces
// the bundled list with the given CAs (a private PKI); cert/key are a client certificate for upstreams that
// require mutual TLS. Files are read when a plan is compiled (start, reload), never per request.
import { readFileSync } from 'node:fs'
import type { ConnectionOptions } from 'node:tls'
import type { UpstreamConfig } from '../config/index.js'

/** An upstream's `tls:` section, as the schema validates it. */
export type UpstreamTlsConfig = NonNullable<UpstreamConfig['tls']>

export function connectTls(cfg: UpstreamTlsConfig | undefined): ConnectionOptions {
  if (cfg === undefined) return {}
  const o: ConnectionOptions = { rejectUnauthorized: !cfg.insecure_skip_verify }
  if (cfg.ca !== undefined) o.ca = readFileSync(cfg.ca)
  if (cfg.servername !== undefined) o.servername = cfg.servername
  if (cfg.cert !== undefined && cfg.key !== undefined) {
    o.cert = readFileSync(cfg.cert)
    o.key = readFileSync(cfg.key)
    if (cfg.passphrase !== undefined) o.passphrase = cfg.passphrase
  }
  return o
}

// OpenSSL's certificate verification results (X509_V_ERR_* names, as Node reports them in err.code)
const VERIFY_CODES = new Set([
  'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_CRL', 'UNABLE_TO_DECRYPT_CERT_SIGNATURE', 'UNABLE_TO_DECRYPT_CRL_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY', 'CERT_SIGNATURE_FAILURE', 'CRL_SIGNATURE_FAILURE', 'CERT_NOT_YET_VALID', 'CERT_HAS_EXPIRED',
  'CRL_NOT_YET_VALID', 'CRL_HAS_EXPIRED', 'ERROR_IN_CERT_NOT_BEFORE_FIELD', 'ERROR_IN_CERT_NOT_AFTER_FIELD',
  'ERROR_IN_CRL_LAST_UPDATE_FIELD', 'ERROR_IN_CRL_NEXT_UPDATE_FIELD', 'OUT_OF_MEM', 'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'CERT_CHAIN_TOO_LONG',
  'CERT_REVOKED', 'INVALID_CA', 'PATH_LENGTH_EXCEEDED', 'INVALID_PURPOSE', 'CERT_UNTRUSTED', 'CERT_REJECTED', 'HOSTNAME_MISMATCH',
])

/** The connection failed in TLS: the upstream's certificate did not verify, or the handshake itself failed. */
export function isTlsError(code: string): boolean {
  return code.startsWith('ERR_TLS_') || code.startsWith('ERR_SSL_') || VERIFY_CODES.has(code)
}
