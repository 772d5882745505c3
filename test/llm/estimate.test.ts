import t from 'tap'
import { estimateTokens } from '../../src/llm/estimate.js'
import { countTokens } from '../../src/llm/tokenizer.js'
import { PER_MESSAGE_TOKENS, REPLY_PRIMER_TOKENS } from '../../src/llm/prompt.js'

const noSse = { dashscopeSse: false }
const chatFraming = (n: number) => n * PER_MESSAGE_TOKENS + REPLY_PRIMER_TOKENS

t.test('openai-chat: messages text plus framing; max_completion_tokens before max_tokens; n choices', async (t) => {
  const body = { model: 'gpt-4o', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: [{ type: 'text', text: 'Hello there' }] }], max_tokens: 50, max_completion_tokens: 100, stream: true }
  const e = estimateTokens('openai-chat', body, '/v1/chat/completions', noSse, 256)
  const prompt = countTokens('Be brief.Hello there') + chatFraming(2)
  t.same({ prompt: e.prompt, maxOutput: e.maxOutput, total: e.total }, { prompt, maxOutput: 100, total: prompt + 100 })
  t.ok(e.info.stream)
  t.equal(e.info.model, 'gpt-4o')
  const n3 = estimateTokens('openai-chat', { ...body, n: 3 }, '/v1/chat/completions', noSse, 256)
  t.equal(n3.maxOutput, 300)
})

t.test('openai-chat without a maximum: the default', async (t) => {
  const e = estimateTokens('openai-chat', { messages: [{ role: 'user', content: 'hi' }] }, '/v1/chat/completions', noSse, 256)
  t.equal(e.maxOutput, 256)
  t.equal(e.total, countTokens('hi') + chatFraming(1) + 256)
})

t.test('openai-completions: prompt string or strings, max_tokens', async (t) => {
  const e = estimateTokens('openai-completions', { prompt: ['Say this', ' is a test'], max_tokens: 7 }, '/v1/completions', noSse, 256)
  t.same({ prompt: e.prompt, maxOutput: e.maxOutput }, { prompt: countTokens('Say this is a test'), maxOutput: 7 })
})

t.test('openai-embeddings: input only, no output', async (t) => {
  const e = estimateTokens('openai-embeddings', { input: ['one', 'two'], model: 'text-embedding-3-small' }, '/v1/embeddings', noSse, 256)
  t.same({ prompt: e.prompt, maxOutput: e.maxOutput, total: e.total }, { prompt: countTokens('onetwo'), maxOutput: 0, total: countTokens('onetwo') })
})

t.test('gemini: system instruction and contents; generationConfig.maxOutputTokens and candidateCount; stream from the path', async (t) => {
  const body = {
    systemInstruction: { parts: [{ text: 'You are a cat.' }] },
    contents: [{ role: 'user', parts: [{ text: 'Hello' }] }, { role: 'model', parts: [{ text: 'Meow' }] }],
    generationConfig: { maxOutputTokens: 64, candidateCount: 2 },
  }
  const path = '/v1beta/models/gemini-2.5-flash:streamGenerateContent'
  const e = estimateTokens('gemini', body, path, noSse, 256)
  const prompt = countTokens('You are a cat.HelloMeow') + chatFraming(2)
  t.same({ prompt: e.prompt, maxOutput: e.maxOutput, total: e.total }, { prompt, maxOutput: 128, total: prompt + 128 })
  t.ok(e.info.stream)
  t.equal(e.info.model, 'gemini-2.5-flash')
  t.equal(estimateTokens('gemini', { contents: body.contents }, path, noSse, 100).maxOutput, 100)
})

t.test('qwen-native: input.messages or input.prompt; parameters.max_tokens; stream from the header', async (t) => {
  const body = { model: 'qwen-plus', input: { messages: [{ role: 'user', content: '你好' }] }, parameters: { max_tokens: 20, result_format: 'message' } }
  const path = '/api/v1/services/aigc/text-generation/generation'
  const e = estimateTokens('qwen-native', body, path, { dashscopeSse: true }, 256)
  t.same({ prompt: e.prompt, maxOutput: e.maxOutput }, { prompt: countTokens('你好') + chatFraming(1), maxOutput: 20 })
  t.ok(e.info.stream)
  t.notOk(estimateTokens('qwen-native', body, path, noSse, 256).info.stream)
  const p = estimateTokens('qwen-native', { model: 'qwen-plus', input: { prompt: 'Tell me a joke' } }, path, noSse, 256)
  t.same({ prompt: p.prompt, maxOutput: p.maxOutput }, { prompt: countTokens('Tell me a joke'), maxOutput: 256 })
})

t.test('other: nothing to count', async (t) => {
  const e = estimateTokens('other', { messages: [{ content: 'hi' }] }, '/v1/files', noSse, 256)
  t.same({ prompt: e.prompt, maxOutput: e.maxOutput, total: e.total }, { prompt: 0, maxOutput: 0, total: 0 })
})

t.test('bodies of the wrong shape estimate as empty, never throw', async (t) => {
  for (const body of [null, 'text', 42, [], { messages: 'nope' }, { input: { messages: [null, 3] } }]) {
    const e = estimateTokens('openai-chat', body, '/v1/chat/completions', noSse, 10)
    t.ok(e.total >= 10 && Number.isInteger(e.total))
  }
})
