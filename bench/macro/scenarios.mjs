// The requests the bench sends. The same method, path and body go to every target (stub direct, proxy, nginx):
// the proxy's config routes /__stub/ to a plain (provider: none) upstream and /v1/ to an OpenAI upstream.

/** A 1024-byte chat-completion request body: a system and a user message padded with deterministic text. */
function chatBody(bytes) {
  const words = 'the quick brown fox jumps over the lazy dog while a leaky bucket drains at its own steady pace '
  const make = (pad) => JSON.stringify({
    model: 'gpt-4o-mini',
    messages: [
      { role: 'system', content: 'You are a terse assistant. Answer in one sentence.' },
      { role: 'user', content: pad },
    ],
    max_tokens: 16,
  })
  const empty = make('').length
  let pad = ''
  while (pad.length < bytes - empty) pad += words
  return make(pad.slice(0, bytes - empty).trimEnd().padEnd(bytes - empty, '.'))
}

const SSE_BODY = JSON.stringify({
  model: 'gpt-4o-mini',
  messages: [{ role: 'user', content: 'Tell me a long story about leaky buckets.' }],
  max_tokens: 200,
  stream: true,
  stream_options: { include_usage: true },
})

const JSON_HEADERS = { 'content-type': 'application/json' }

export const SCENARIOS = {
  get: {
    title: 'small GET',
    about: 'GET /__stub/health (15-byte JSON) through a provider: none route: plain proxying',
    method: 'GET',
    path: '/__stub/health',
    headers: {},
    body: null,
  },
  chat: {
    title: '1 KB chat POST',
    about: 'POST /v1/chat/completions, 1024-byte body, max_tokens 16, JSON answer (~0.7 KB) through the OpenAI route',
    method: 'POST',
    path: '/v1/chat/completions',
    headers: JSON_HEADERS,
    body: chatBody(1024),
  },
  sse: {
    title: 'SSE 200 tokens',
    about: 'POST /v1/chat/completions stream: true, max_tokens 200, include_usage: ~200 SSE events (~55 KB), unpaced',
    method: 'POST',
    path: '/v1/chat/completions',
    headers: JSON_HEADERS,
    body: SSE_BODY,
  },
}
