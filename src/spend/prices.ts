// What a token costs: the shipped price table (config/prices.yaml, with its date and sources) overlaid with the
// config's `prices:` section, compiled once per plan into integer pico-USD per token, so a request's cost is exact
// integer arithmetic (prices with up to six decimals per 1 M tokens are represented exactly) and never a float sum.
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'
import * as z from 'zod'
import { pricesSection, type PriceConfig, type PricesConfig } from '../config/schema.js'
import { LeakyError } from '../errors.js'
import { normalizeModel } from '../observability/metrics.js'
import type { Usage } from '../llm/usage.js'

/** The shipped table: this module sits two levels below the repo root both in src/ and in dist/. */
export const SHIPPED_PRICES_PATH = fileURLToPath(new URL('../../config/prices.yaml', import.meta.url))

const priceFile = z.strictObject({ as_of: z.string().min(1), providers: pricesSection })

/** pico-USD (1e-12) per token, per request for `request` */
export interface Price {
  input: number
  cachedInput: number
  cacheWrite: number
  output: number
  reasoning: number
  request: number
}

/** Providers that are priced: a route with provider none has no tokens to price. */
const PRICED = ['openai', 'gemini', 'qwen', 'anthropic'] as const

let shipped: { asOf: string; providers: PricesConfig } | null = null

/** The shipped table, read and validated once per thread; a broken one is a packaging error that names the file. */
export function shippedPrices(file = SHIPPED_PRICES_PATH): { asOf: string; providers: PricesConfig } {
  if (shipped !== null && file === SHIPPED_PRICES_PATH) return shipped
  let raw: unknown
  try {
    raw = parse(readFileSync(file, 'utf8'))
  } catch (err) {
    throw new LeakyError('LEAKY_PRICES_FILE', `${file}: ${(err as Error).message}`)
  }
  const r = priceFile.safeParse(raw)
  if (!r.success) {
    const i = r.error.issues[0]
    throw new LeakyError('LEAKY_PRICES_FILE', `${file}: ${i.path.join('.')}: ${i.message}`)
  }
  const out = { asOf: r.data.as_of, providers: r.data.providers }
  if (file === SHIPPED_PRICES_PATH) shipped = out
  return out
}

const PICO_PER_USD_PER_MTOK = 1e6

function compileOne(p: PriceConfig): Price {
  const rate = (usdPerM: number) => Math.round(usdPerM * PICO_PER_USD_PER_MTOK)
  return {
    input: rate(p.input),
    cachedInput: rate(p.cached_input ?? p.input),
    cacheWrite: rate(p.cache_write ?? p.input),
    output: rate(p.output),
    reasoning: rate(p.reasoning ?? p.output),
    // per request: USD → pico
    request: Math.round((p.request ?? 0) * 1e12),
  }
}

/** Model names seen per provider are remembered up to this many (clients choose them: bounded like metric labels). */
const MEMO_CAP = 1024

export class PriceTable {
  readonly asOf: string
  readonly #prices = new Map<string, Price>()
  /** raw model name as the response or request gave it → its price (or null): no normalising per request */
  readonly #memo = new Map<string, Price | null>()

  constructor(overrides: PricesConfig, base = shippedPrices()) {
    this.asOf = base.asOf
    for (const provider of PRICED) {
      for (const layer of [base.providers[provider], overrides[provider]]) {
        if (layer === undefined) continue
        for (const [model, p] of Object.entries(layer)) this.#prices.set(`${provider}\0${normalizeModel(model)}`, compileOne(p))
      }
    }
  }

  get size(): number {
    return this.#prices.size
  }

  /** The price of `model` at `provider`, or null: unknown, never guessed as 0. */
  lookup(provider: string, model: string): Price | null {
    const key = `${provider}\0${model}`
    const hit = this.#memo.get(key)
    if (hit !== undefined) return hit
    const price = model === '' ? null : (this.#prices.get(`${provider}\0${normalizeModel(model)}`) ?? null)
    if (this.#memo.size < MEMO_CAP) this.#memo.set(key, price)
    return price
  }
}

/**
 * The cost of one response in pico-USD. The usage model (src/llm/usage.ts) counts cached and cache-written input
 * inside `prompt` and reasoning inside `completion`; each part is priced at its own rate here, and Gemini's
 * tool-use prompt (billed on top of the prompt) at the input rate.
 */
export function costPico(p: Price, u: Usage): number {
  const plainInput = Math.max(0, u.prompt - u.cached - u.cacheWrite)
  const plainOutput = Math.max(0, u.completion - u.thoughts)
  return plainInput * p.input + u.cached * p.cachedInput + u.cacheWrite * p.cacheWrite + u.toolPrompt * p.input +
    plainOutput * p.output + u.thoughts * p.reasoning + p.request
}

/** pico-USD → "0.000123" (six places, rounded half up): the access line's cost_usd. */
export function formatUsd(pico: number): string {
  const micro = Math.round(pico / 1e6)
  const whole = Math.floor(micro / 1e6)
  const frac = String(micro - whole * 1e6).padStart(6, '0')
  return `${whole}.${frac}`
}
