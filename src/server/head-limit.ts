// uWS 20.57 answers a request head larger than UWS_HTTP_MAX_HEADERS_SIZE (default 4 KB) with its own HTML 431
// before any handler runs; 20.30 has no such variable (a head split across reads is closed past 4 KB). The variable
// is read once, when the binary is loaded into a process, so the generation sets it before its first worker loads
// uWS, and a changed server.max_header takes effect with an upgrade (a new generation process), never a reload.

/**
 * The uWS limit for a configured server.max_header: above it, so heads a little over max_header still reach the
 * proxy and get its JSON 431 in the provider's error shape; only heads of twice that (or 4 KB more) meet uWS's own.
 */
export function uwsHeadLimit(maxHeader: number): number {
  return Math.max(2 * maxHeader, maxHeader + 4096)
}

export const UWS_HEAD_LIMIT_ENV = 'UWS_HTTP_MAX_HEADERS_SIZE'

/** Set it for this process; call before any worker thread loads uWS. Returns the value set. */
export function applyUwsHeadLimit(maxHeader: number, env: NodeJS.ProcessEnv = process.env): number {
  const limit = uwsHeadLimit(maxHeader)
  env[UWS_HEAD_LIMIT_ENV] = String(limit)
  return limit
}
