// OpenAI chat completions requests → Anthropic Messages and Gemini generateContent bodies: every field that has a
// counterpart lands there; every one that has none is refused naming the field.
import t from 'tap'
import { readChatRequest, Untranslatable, type ChatRequest } from '../../src/translate/chat-request.js'
import { toAnthropic } from '../../src/translate/anthropic-request.js'
import { toGemini } from '../../src/translate/gemini-request.js'

function read(b: Record<string, unknown>): ChatRequest {
  const r = readChatRequest(b, 1024)
  if (r instanceof Untranslatable) throw new Error(r.message)
  return r
}

const PNG = 'iVBORw0KGgo='
const conversation = {
  model: 'x',
  messages: [
    { role: 'system', content: 'Be brief.' },
    { role: 'developer', content: [{ type: 'text', text: 'Use metric units.' }] },
    { role: 'user', content: [{ type: 'text', text: 'Weather in Paris? And this:' }, { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } }, { type: 'image_url', image_url: { url: 'https://example.com/a.webp' } }] },
    { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
    { role: 'tool', tool_call_id: 'call_1', content: '18°C' },
    { role: 'user', content: 'Thanks' },
  ],
  max_tokens: 50,
  temperature: 0.5,
  top_p: 0.9,
  stop: 'END',
  stream: true,
  stream_options: { include_usage: true },
  tools: [{ type: 'function', function: { name: 'get_weather', description: 'Weather now', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }],
  tool_choice: 'required',
}

t.test('anthropic: system, turns, images, tools, tool results, sampling', async (t) => {
  const a = toAnthropic(read(conversation), 'claude-sonnet-4') as Record<string, any>
  t.same(a, {
    model: 'claude-sonnet-4',
    max_tokens: 50,
    system: 'Be brief.\n\nUse metric units.',
    messages: [
      { role: 'user', content: [
        { type: 'text', text: 'Weather in Paris? And this:' },
        { type: 'image', source: { type: 'base64', media_type: 'image/png', data: PNG } },
        { type: 'image', source: { type: 'url', url: 'https://example.com/a.webp' } },
      ] },
      { role: 'assistant', content: [{ type: 'tool_use', id: 'call_1', name: 'get_weather', input: { city: 'Paris' } }] },
      // the tool result and the next user text: one user turn (Anthropic alternates roles)
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'call_1', content: '18°C' }, { type: 'text', text: 'Thanks' }] },
    ],
    temperature: 0.5,
    top_p: 0.9,
    stop_sequences: ['END'],
    stream: true,
    tools: [{ name: 'get_weather', description: 'Weather now', input_schema: { type: 'object', properties: { city: { type: 'string' } } } }],
    tool_choice: { type: 'any' },
  })
})

t.test('gemini: systemInstruction, model turns, functionCall/functionResponse, images, generationConfig', async (t) => {
  const g = toGemini(read({ ...conversation, response_format: { type: 'json_schema', json_schema: { name: 'w', schema: { type: 'object' } } } })) as Record<string, any>
  t.same(g, {
    contents: [
      { role: 'user', parts: [{ text: 'Weather in Paris? And this:' }, { inlineData: { mimeType: 'image/png', data: PNG } }, { fileData: { mimeType: 'image/webp', fileUri: 'https://example.com/a.webp' } }] },
      { role: 'model', parts: [{ functionCall: { name: 'get_weather', args: { city: 'Paris' } } }] },
      { role: 'user', parts: [{ functionResponse: { name: 'get_weather', response: { content: '18°C' } } }, { text: 'Thanks' }] },
    ],
    generationConfig: { maxOutputTokens: 50, temperature: 0.5, topP: 0.9, stopSequences: ['END'], responseMimeType: 'application/json', responseJsonSchema: { type: 'object' } },
    systemInstruction: { parts: [{ text: 'Be brief.\n\nUse metric units.' }] },
    tools: [{ functionDeclarations: [{ name: 'get_weather', description: 'Weather now', parametersJsonSchema: { type: 'object', properties: { city: { type: 'string' } } } }] }],
    toolConfig: { functionCallingConfig: { mode: 'ANY' } },
  })
})

t.test('max_completion_tokens wins; the target default when none', async (t) => {
  t.equal(read({ messages: [{ role: 'user', content: 'hi' }], max_tokens: 5, max_completion_tokens: 7 }).maxTokens, 7)
  t.equal(read({ messages: [{ role: 'user', content: 'hi' }] }).maxTokens, 1024)
})

// [body change, target, field named]
const refused: Array<[Record<string, unknown>, 'anthropic' | 'gemini' | 'both', string]> = [
  [{ logprobs: true }, 'both', 'logprobs'],
  [{ audio: { voice: 'x' } }, 'both', 'audio'],
  [{ modalities: ['audio'] }, 'both', 'modalities'],
  [{ prediction: {} }, 'both', 'prediction'],
  [{ n: 2 }, 'anthropic', 'n'],
  [{ seed: 1 }, 'anthropic', 'seed'],
  [{ presence_penalty: 0.5 }, 'anthropic', 'presence_penalty'],
  [{ response_format: { type: 'json_object' } }, 'anthropic', 'response_format'],
  [{ parallel_tool_calls: false }, 'gemini', 'parallel_tool_calls'],
  [{ user: 'u1' }, 'gemini', 'user'],
  [{ messages: [{ role: 'user', content: [{ type: 'input_audio', input_audio: {} }] }] }, 'both', 'messages[0].content[0].type'],
  [{ messages: [{ role: 'assistant', content: 'x', tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{bad' } }] }] }, 'both', 'messages[0].tool_calls[0].function.arguments'],
  [{ messages: [{ role: 'tool', tool_call_id: 'nope', content: 'x' }] }, 'gemini', 'messages[0].tool_call_id'],
  [{ messages: [{ role: 'function', name: 'f', content: 'x' }] }, 'both', 'messages[0].role'],
  [{ tools: [{ type: 'web_search' }] }, 'both', 'tools[0]'],
]

for (const [change, target, field] of refused) {
  for (const to of target === 'both' ? ['anthropic', 'gemini'] as const : [target]) {
    t.test(`${to} refuses ${JSON.stringify(change)} naming ${field}`, async (t) => {
      const r = readChatRequest({ model: 'x', messages: [{ role: 'user', content: 'hi' }], ...change }, 1024)
      const out = r instanceof Untranslatable ? r : to === 'anthropic' ? toAnthropic(r, 'm') : toGemini(r)
      t.ok(out instanceof Untranslatable, 'refused')
      t.equal((out as Untranslatable).field, field)
    })
  }
}
