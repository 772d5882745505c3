// Messages between worker threads and the cache owner (the generation's main thread), one MessagePort per worker.
// `id` names one request on its worker; the owner answers several waiting requests of one worker in one message
// (`ids`) so a chunk relayed to 50 coalesced requests is copied across threads once per worker, not 50 times.
// Chunks travel as transferred ArrayBuffers (no second copy).

/** Worker → owner. */
export const enum W {
  /** look `key` up: hit, lead (go upstream) or follow (wait for the leader's answer) */
  GET = 0,
  /** the leader's upstream answered: status and headers */
  HEAD = 1,
  DATA = 2,
  /** the answer is complete; `usage` its tokens (-1 unknown) */
  END = 3,
  /** the leader's answer failed or was abandoned: hand the call over, or fail the followers */
  FAIL = 4,
  /** the answer grew past max_entry: it is not stored, and followers that cannot be fed live go upstream themselves */
  OVER = 5,
  /** a waiting request's client went away */
  LEFT = 6,
}

/** Owner → worker. */
export const enum O {
  /** a stored (or coalesced, buffered) answer, whole */
  HIT = 0,
  LEAD = 1,
  BYPASS = 2,
  /** the leader has followers: its client's abort must not cancel the upstream call */
  FOLLOWED = 3,
  HEAD = 4,
  DATA = 5,
  END = 6,
  FAIL = 7,
  /** the request waits for an identical one in flight (it is coalesced) */
  FOLLOW = 8,
}

/** How an answer reached the client: the access line's `cache` and the x-cache header. */
export const enum Served {
  HIT = 0,
  STALE = 1,
  COALESCED = 2,
}

export interface GetMsg {
  t: W.GET
  id: number
  key: string
  /** route path and scope value: what /admin/cache/purge selects by */
  route: string
  scope: string
  ttl: number
  swr: number
  maxEntry: number
  /** client Cache-Control no-cache: not served from the cache, the fresh answer is stored */
  fresh: boolean
}

export interface HeadMsg { t: W.HEAD; id: number; key: string; status: number; headers: string[]; sse: boolean; store: boolean }
export interface DataMsg { t: W.DATA; id: number; key: string; chunk: Uint8Array }
/** `cost`: what the answer cost at the plan's prices, pico-USD (-1 unknown: no price, no usage) */
export interface EndMsg { t: W.END; id: number; key: string; usage: number; cost: number }
export interface KeyMsg { t: W.FAIL | W.OVER | W.LEFT; id: number; key: string }

export type ToOwner = GetMsg | HeadMsg | DataMsg | EndMsg | KeyMsg

export interface HitMsg {
  t: O.HIT
  ids: number[]
  served: Served
  status: number
  headers: string[]
  sse: boolean
  chunks: Uint8Array[]
  /** SSE: ms from the head to each chunk as it first arrived */
  times: number[]
  /** tokens of the stored answer, -1 unknown */
  usage: number
  /** seconds since it was stored (the Age header) */
  age: number
}

export type ToWorker =
  | HitMsg
  | { t: O.LEAD | O.BYPASS | O.FOLLOWED | O.FOLLOW; id: number }
  | { t: O.HEAD; ids: number[]; status: number; headers: string[] }
  | { t: O.DATA; ids: number[]; chunk: Uint8Array }
  | { t: O.END; ids: number[]; usage: number }
  | { t: O.FAIL; ids: number[] }
