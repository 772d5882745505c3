// OpenAI chat completions → Gemini generateContent / streamGenerateContent. System messages become
// systemInstruction; assistant turns are `model` turns with functionCall parts; a tool result is a functionResponse
// part of a user turn, named after the call it answers (Gemini matches results by function name, not call id);
// images go inline (base64) or as fileData (URL); JSON mode maps to responseMimeType (+ responseJsonSchema).
import { Untranslatable, type ChatRequest, type Part } from './chat-request.js'

type GPart = Record<string, unknown>

/** The media type of an image URL from its extension; Gemini's fileData needs one. */
function mediaTypeOf(url: string): string {
  const m = /\.(png|jpe?g|gif|webp|heic|heif)(?:[?#]|$)/i.exec(url)
  if (m === null) return 'image/jpeg'
  const ext = m[1].toLowerCase()
  return ext === 'jpg' ? 'image/jpeg' : `image/${ext}`
}

function parts(ps: Part[]): GPart[] {
  const out: GPart[] = []
  for (const p of ps) {
    if (p.kind === 'text') {
      if (p.text !== '') out.push({ text: p.text })
    } else if (p.url !== '') out.push({ fileData: { mimeType: mediaTypeOf(p.url), fileUri: p.url } })
    else out.push({ inlineData: { mimeType: p.mediaType, data: p.data } })
  }
  return out
}

export function toGemini(r: ChatRequest): Record<string, unknown> | Untranslatable {
  let system = ''
  const contents: Array<{ role: 'user' | 'model'; parts: GPart[] }> = []
  const push = (role: 'user' | 'model', p: GPart[]) => {
    const last = contents[contents.length - 1]
    if (last !== undefined && last.role === role) last.parts.push(...p)
    else contents.push({ role, parts: p })
  }
  const callNames = new Map<string, string>()
  for (let i = 0; i < r.messages.length; i++) {
    const m = r.messages[i]
    switch (m.role) {
      case 'system':
        system = system === '' ? m.text : `${system}\n\n${m.text}`
        break
      case 'user':
        push('user', parts(m.parts))
        break
      case 'assistant': {
        const p = parts(m.parts)
        for (const c of m.toolCalls) {
          if (c.input === null || typeof c.input !== 'object' || Array.isArray(c.input)) {
            return new Untranslatable(`messages[${i}].tool_calls`, 'Gemini takes function call arguments as a JSON object')
          }
          callNames.set(c.id, c.name)
          p.push({ functionCall: { name: c.name, args: c.input } })
        }
        push('model', p)
        break
      }
      case 'tool': {
        const name = callNames.get(m.toolCallId)
        if (name === undefined) return new Untranslatable(`messages[${i}].tool_call_id`, 'names no tool call of an earlier assistant message (Gemini needs the function name)')
        push('user', [{ functionResponse: { name, response: { content: m.text } } }])
        break
      }
    }
  }
  const gc: Record<string, unknown> = { maxOutputTokens: r.maxTokens }
  if (r.temperature !== undefined) gc.temperature = r.temperature
  if (r.topP !== undefined) gc.topP = r.topP
  if (r.stop !== undefined) gc.stopSequences = r.stop
  if (r.n !== 1) gc.candidateCount = r.n
  if (r.seed !== undefined) gc.seed = r.seed
  if (r.presencePenalty !== undefined) gc.presencePenalty = r.presencePenalty
  if (r.frequencyPenalty !== undefined) gc.frequencyPenalty = r.frequencyPenalty
  if (r.responseFormat !== 'text') gc.responseMimeType = 'application/json'
  if (r.jsonSchema !== undefined) gc.responseJsonSchema = r.jsonSchema
  const out: Record<string, unknown> = { contents, generationConfig: gc }
  if (system !== '') out.systemInstruction = { parts: [{ text: system }] }
  if (r.tools.length > 0) {
    out.tools = [{
      functionDeclarations: r.tools.map((t) => ({
        name: t.name,
        ...(t.description !== undefined ? { description: t.description } : {}),
        ...(t.parameters !== undefined ? { parametersJsonSchema: t.parameters } : {}),
      })),
    }]
  }
  const tc = r.toolChoice
  if (tc !== undefined) {
    out.toolConfig = {
      functionCallingConfig: tc.kind === 'function' ? { mode: 'ANY', allowedFunctionNames: [tc.name] }
        : { mode: tc.kind === 'auto' ? 'AUTO' : tc.kind === 'none' ? 'NONE' : 'ANY' },
    }
  }
  if (r.user !== undefined) return new Untranslatable('user', 'Gemini has no end-user identifier field')
  if (r.parallelToolCalls === false) return new Untranslatable('parallel_tool_calls', 'Gemini cannot be told to call one function at a time')
  return out
}
