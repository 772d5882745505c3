// Webhooks: events (a budget alert; anomalies once they exist) POSTed as JSON to the URLs the config names, from the
// generation's main thread — never on a request's path. Each webhook has its own bounded queue and sends one event
// at a time, in order; a failed POST (network error, timeout, non-2xx) is retried with exponential backoff and
// jitter up to `attempts` times, then dropped with a log line. A full queue drops its oldest event. Both count in
// leaky_webhook_events_total{result}. Queued events are lost on stop and upgrade (they are alerts, not a ledger).
import { Counter, type Registry } from 'prom-client'
import type { Logger } from 'pino'
import { request } from 'undici'

import type { WEBHOOK_EVENTS } from '../config/schema.js'

export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number]

export interface WebhookConfig {
  url: string
  events: WebhookEvent[]
  headers: Record<string, string>
  timeout: number
  attempts: number
  backoff: { min: number; max: number }
  queue: number
}

type Result = 'delivered' | 'retried' | 'dropped_failed' | 'dropped_full'

class Hook {
  readonly cfg: WebhookConfig
  readonly #queue: string[] = []
  #busy = false
  #closed = false
  #timer: NodeJS.Timeout | null = null

  constructor(cfg: WebhookConfig, private readonly count: (r: Result) => void, private readonly logger: Logger) {
    this.cfg = cfg
  }

  push(body: string): void {
    if (this.#queue.length >= this.cfg.queue) {
      this.#queue.shift()
      this.count('dropped_full')
      this.logger.warn({ msg: 'webhook queue full: oldest event dropped', url: redactUrl(this.cfg.url), queue: this.cfg.queue })
    }
    this.#queue.push(body)
    if (!this.#busy) void this.#drain()
  }

  close(): void {
    this.#closed = true
    if (this.#timer !== null) clearTimeout(this.#timer)
  }

  async #drain(): Promise<void> {
    this.#busy = true
    while (this.#queue.length > 0 && !this.#closed) {
      const body = this.#queue[0]
      let ok = false
      let why = ''
      for (let attempt = 0; attempt <= this.cfg.attempts && !this.#closed; attempt++) {
        if (attempt > 0) {
          this.count('retried')
          await this.#sleep(backoffMs(this.cfg.backoff, attempt))
        }
        why = await this.#post(body)
        if (why === '') {
          ok = true
          break
        }
      }
      this.#queue.shift()
      if (ok) this.count('delivered')
      else if (!this.#closed) {
        this.count('dropped_failed')
        this.logger.warn({ msg: 'webhook failed: event dropped', url: redactUrl(this.cfg.url), attempts: this.cfg.attempts + 1, reason: why })
      }
    }
    this.#busy = false
  }

  // '' when delivered, else why not
  async #post(body: string): Promise<string> {
    try {
      const res = await request(this.cfg.url, {
        method: 'POST', body, headers: { 'content-type': 'application/json', ...this.cfg.headers },
        headersTimeout: this.cfg.timeout, bodyTimeout: this.cfg.timeout, signal: AbortSignal.timeout(this.cfg.timeout),
      })
      await res.body.dump()
      return res.statusCode >= 200 && res.statusCode < 300 ? '' : `status ${res.statusCode}`
    } catch (err) {
      return (err as Error).message
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.#timer = setTimeout(resolve, ms)
      this.#timer.unref()
    })
  }
}

/** Exponential from min, doubling per attempt, capped at max, with full jitter on the upper half. */
export function backoffMs(b: { min: number; max: number }, attempt: number): number {
  const d = Math.min(b.max, b.min * 2 ** (attempt - 1))
  return Math.round(d / 2 + Math.random() * (d / 2))
}

function redactUrl(u: string): string {
  try {
    const url = new URL(u)
    url.username = ''
    url.password = ''
    url.search = ''
    return url.toString()
  } catch {
    return '(invalid url)'
  }
}

export class Webhooks {
  #hooks: Hook[] = []
  readonly #logger: Logger
  readonly #counter: Counter<'result'>

  constructor(registry: Registry, logger: Logger) {
    this.#logger = logger
    this.#counter = new Counter({
      name: 'leaky_webhook_events_total', help: 'Webhook events by result: delivered, retried (one per retry), dropped_failed (out of attempts), dropped_full (queue full).',
      labelNames: ['result'], registers: [registry],
    })
  }

  /** Take the webhooks of a (re)loaded config; events queued for a webhook that stays the same keep their place. */
  configure(list: WebhookConfig[]): void {
    const keep = new Map(this.#hooks.map((h) => [JSON.stringify(h.cfg), h]))
    const next: Hook[] = []
    for (const cfg of list) {
      const k = JSON.stringify(cfg)
      const h = keep.get(k)
      if (h !== undefined) {
        keep.delete(k)
        next.push(h)
      } else next.push(new Hook(cfg, (r) => this.#counter.inc({ result: r }), this.#logger))
    }
    for (const h of keep.values()) h.close()
    this.#hooks = next
  }

  /** Queue `payload` (with `event` and `time` added) for every webhook subscribed to `event`. Never throws. */
  send(event: WebhookEvent, payload: Record<string, unknown>): void {
    if (this.#hooks.length === 0) return
    const body = JSON.stringify({ event, time: new Date().toISOString(), ...payload })
    for (const h of this.#hooks) if (h.cfg.events.includes(event)) h.push(body)
  }

  close(): void {
    for (const h of this.#hooks) h.close()
    this.#hooks = []
  }
}
