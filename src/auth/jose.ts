// jose, loaded on first use: it is only needed where a `jwt` section is configured, and importing it costs ~20 ms
// of start-up (~180 ms on a loaded machine) in every worker thread. Every use is on an async path (a cache miss).
type Jose = typeof import('jose')
let loading: Promise<Jose> | null = null

export function jose(): Promise<Jose> {
  return (loading ??= import('jose'))
}
