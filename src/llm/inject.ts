// Asking an OpenAI-shaped upstream (OpenAI, Qwen compatible mode) for streamed usage on the client's behalf:
// without `stream_options.include_usage` a stream reports no usage at all, and the proxy could only count.
// The meter then strips the extra usage-only chunk (createMeter with stripUsageChunk), so the client sees the
// stream it asked for (apart from the `"usage":null` OpenAI then adds to each chunk).
//
// When the request has no `stream_options`, the member is spliced into the raw bytes before the closing brace:
// no re-serialisation of a large prompt, and every other byte (number formats, key order, spacing) unchanged.
// An existing `stream_options` object is extended through JSON.stringify of the parsed body instead.

const CLOSE = 0x7d
const OPEN = 0x7b

const MEMBER = Buffer.from('"stream_options":{"include_usage":true}')
const COMMA = Buffer.from(',')

/** The request is a stream whose client did not ask for usage: the case inject applies to. */
export function wantsInjection(body: unknown): boolean {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return false
  const b = body as Record<string, unknown>
  if (b.stream !== true) return false
  const so = b.stream_options
  return !(so !== null && typeof so === 'object' && (so as Record<string, unknown>).include_usage === true)
}

/**
 * The request body with `stream_options.include_usage: true`, everything else preserved; null when it does not
 * apply (not a streaming request, usage already asked for, not a JSON object).
 * `raw` is the body as received: given, and without `stream_options`, the new body is those bytes plus one member.
 */
export function injectIncludeUsage(body: unknown, raw?: Buffer): Buffer | null {
  if (!wantsInjection(body)) return null
  const b = body as Record<string, unknown>
  const so = b.stream_options
  if (so === undefined && raw !== undefined) {
    const spliced = splice(raw)
    if (spliced !== null) return spliced
  }
  const options = so !== null && typeof so === 'object' && !Array.isArray(so) ? { ...(so as object), include_usage: true } : { include_usage: true }
  // spreading keeps key order, and an existing stream_options keeps its place
  return Buffer.from(JSON.stringify({ ...b, stream_options: options }))
}

/** raw with the member inserted after its last member; null when raw does not end like a JSON object. */
function splice(raw: Buffer): Buffer | null {
  let end = raw.length - 1
  while (end >= 0 && raw[end] <= 0x20) end--
  if (end < 0 || raw[end] !== CLOSE) return null
  let prev = end - 1
  while (prev >= 0 && raw[prev] <= 0x20) prev--
  if (prev < 0) return null
  const at = prev + 1
  return Buffer.concat(raw[prev] === OPEN
    ? [raw.subarray(0, at), MEMBER, raw.subarray(at)]
    : [raw.subarray(0, at), COMMA, MEMBER, raw.subarray(at)])
}
