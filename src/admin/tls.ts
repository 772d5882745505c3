// admin.tls as node:https options. Files are read here, at start and reload, so a certificate renewed on disk is
// picked up by the next reload.
import { readFileSync } from 'node:fs'
import type { TlsOptions } from 'node:tls'
import type { Config } from '../config/index.js'

export type AdminTls = NonNullable<Config['admin']['tls']>

export function adminTlsOptions(t: AdminTls): TlsOptions {
  const o: TlsOptions = { cert: readFileSync(t.cert), key: readFileSync(t.key), minVersion: t.min_version }
  if (t.passphrase !== undefined) o.passphrase = t.passphrase
  if (t.client_ca !== undefined) {
    o.ca = readFileSync(t.client_ca)
    o.requestCert = true
    o.rejectUnauthorized = t.client_cert === 'require'
  }
  return o
}
