// The bucket table: GCRA buckets in one SharedArrayBuffer, shared by every worker thread of a generation. Fixed
// capacity (memory is a config number, not a leak), open addressing with a bounded probe window, lock-free charges
// by compare-and-swap on one int64 word per bucket. Create it on the main thread, send `table.sab` to each worker,
// `BucketTable.attach(sab)` there. A BucketTable object is per thread (it holds the thread's scratch key, its pin
// word and the results of the last call); the SharedArrayBuffer is what is shared.
//
// Layout: a header (int64 words: magic, layout version, capacity, when_full, clock anchor, handle count, counters;
// then one int32 pin word per handle, MAX_HANDLES of them), then `capacity` slots of SLOT_BYTES = 80 bytes:
//   +0  int32 ctl   state (2 bits: EMPTY BUSY LIVE TOMB) | tag (14 hash bits) << 2 | generation (16 bits) << 16
//   +4  int32 key length code (see key.ts)
//   +8  int64 TAT   ns since the epoch; SENTINEL while the slot is claimed for (re)use or is a tombstone
//   +16 key bytes   KEY_MAX = 64, zero-padded
// A key lives within PROBE slots of its hash position (linear probing). EMPTY ends every probe chain and is never
// re-created; a deleted bucket becomes TOMB, which probes step over and inserts reuse.
//
// Why concurrent use is safe:
// - Charging. A charger finds the slot (ctl LIVE, generation g, same key), pins it (stores the slot index in its
//   own pin word), loads TAT, re-reads ctl: still g means no one claimed the slot in between, so the key compare was
//   not torn and the TAT is this key's (a seqlock on the key bytes). It then CASes TAT from the value it read; the
//   CAS is the linearisation point. On CAS failure it re-reads ctl before using the new value.
// - Reclaiming (a drained bucket) and evicting (evict_idle) claim a LIVE slot by CAS on that same TAT word (the
//   drained/idle value -> SENTINEL), so a charger and a reclaimer never both win: if the charge lands first, TAT is
//   no longer the value the reclaimer read and its CAS fails; if the reclaim lands first, the charger's CAS fails,
//   it sees SENTINEL and probes again. Only the SENTINEL owner changes a LIVE slot's ctl. A reclaimer that finds
//   ctl changed after its CAS (the TAT belonged to a newer key) writes the TAT back and retries.
// - No ABA. A single-word CAS cannot tell the old key's TAT from a new key's equal TAT (with frozen or coarse
//   clocks equal values are common: every fresh bucket starts at `now`). So a slot that held a key is reused only
//   after checking every other handle's pin word, *after* marking the slot BUSY (a hazard pointer): a charger that
//   pinned before the BUSY store is seen and the slot is left as TOMB (the reuser picks another); a charger that
//   pins after it fails its ctl re-check. A pinned slot is therefore never given a new key while a charger may
//   still CAS it with the old key's value. A pin stays until its handle works on another slot (one store per change
//   of slot, none for a hot key); an idle thread holds at most one slot unreusable.
// - Inserting. An inserter claims a free slot (EMPTY or TOMB by CAS on ctl; a drained/idle LIVE slot as above),
//   marks it BUSY with its tag, writes the key, then scans the window again for the same key. Two inserters of one
//   key that picked different slots both see each other (each claims before it checks, and all Atomics are
//   sequentially consistent): a published copy wins; between two BUSY claims the one later in probe order yields
//   (releases to TOMB and retries) while the earlier one waits for it. So a key has at most one slot. Waiting is
//   bounded (WAIT_MS): a thread that died mid-insert makes same-tag inserts answer BUSY, never hang.
// - Different keys never merge: the full key bytes (or the SHA-256 of a long key) are stored and compared.
// - Calendar windows (limit.calendar): the GCRA math runs at `at` = the window's end instead of `now`, so a charged
//   bucket's TAT is past the window's end: it never looks drained to a real-time charger inside its window (no
//   reclaim), and at the next window's end it is empty again (limit.ts picks T for that). Slot search and reclaim
//   always use the real `now`, so a calendar charge never takes a real-time bucket that is still live.
import { LeakyError } from '../errors.js'
import { Clock, measureAnchorNs } from './clock.js'
import { admit, force, NONCONFORMING, refund, retryAfter } from './gcra.js'
import { KEY_WORDS, KeyBuffer, keyWords, type KeyHash } from './key.js'
import { type CompiledLimit, MAX_TAU_NS } from './limit.js'
import { type SnapshotError, SnapshotReader, SnapshotWriter } from './snapshot.js'

/** Result of a table (or policy) call. Details of the call sit in the table's `afterNs` / `retryNs` fields. */
export const Status = {
  /** charged (or adjusted, or peeked) */
  OK: 0,
  /** does not conform now; `retryNs` says when it would */
  DENIED: 1,
  /** cost exceeds the limit's burst: this request can never conform */
  OVER_BURST: 2,
  /** no free slot in the key's probe window and when_full is deny_new (or nothing to evict) */
  FULL: 3,
  /** the key's slot stayed claimed or kept changing for ~1 s (WAIT_MS): a thread died mid-insert? */
  BUSY: 4,
} as const
export type Status = (typeof Status)[keyof typeof Status]

export type WhenFull = 'deny_new' | 'evict_idle'

export interface TableOptions {
  /** test hook: replace the key hash (e.g. `() => 0` puts every key in one probe window with one tag) */
  hash?: KeyHash
  /** create(): the clock anchor to store (default: measured now) */
  anchorNs?: bigint
}

export interface TableStats {
  capacity: number
  bytes: number
  whenFull: WhenFull
  /** keys inserted */
  inserted: number
  /** drained slots taken over by a new key */
  reclaimed: number
  /** live buckets dropped by evict_idle to make room */
  evicted: number
  /** new keys refused because their window was full (deny_new) */
  full: number
  /** calls answered BUSY */
  busy: number
}

export interface Occupancy {
  /** buckets holding a level */
  live: number
  /** buckets that drained (empty, reusable) */
  drained: number
  tombstones: number
  empty: number
}

export type RestoreResult =
  | { ok: true; restored: number; dropped: number; full: number }
  | { ok: false; error: SnapshotError }

/** Slots a key may live in, from its hash position on. */
export const PROBE = 32
/** Bytes of one slot. */
export const SLOT_BYTES = 80
/** Handles (threads) that may attach one table: each owns one pin word. */
export const MAX_HANDLES = 256
const HEADER_BYTES = 128 + MAX_HANDLES * 4
const PIN_I32 = 128 / 4
const SLOT_I32 = SLOT_BYTES / 4
const SLOT_I64 = SLOT_BYTES / 8
const FIRST_I32 = HEADER_BYTES / 4
const FIRST_I64 = HEADER_BYTES / 8

const TABLE_MAGIC = 0x4c4b5954424c3031n // 'LKYTBL01'
const LAYOUT_VERSION = 1n
const H_MAGIC = 0
const H_LAYOUT = 1
const H_CAPACITY = 2
const H_WHEN_FULL = 3
const H_ANCHOR = 4
const H_HANDLES = 5
const C_INSERTED = 8
const C_RECLAIMED = 9
const C_EVICTED = 10
const C_FULL = 11
const C_BUSY = 12

const EMPTY = 0
const BUSY = 1
const LIVE = 2
const TOMB = 3
const TAG_MASK = 0xfffc
// the only negative TAT (real TATs are ns since the epoch): tests are `tat < 0n`, cheaper than bigint equality
const SENTINEL = -0x8000000000000000n
/** internal locate() result: key absent and not inserted */
const NOT_FOUND = 5
/** internal: the slot changed under us, probe again */
const AGAIN = -1
// How long a thread may wait for a slot another thread holds BUSY (mid-insert) or keeps changing, before the call
// answers BUSY. Generous because on an overloaded machine a descheduled inserter can hold its slot for tens of ms;
// only a thread that died mid-insert makes anyone wait this long.
const WAIT_MS = 1000
// retries of a slot that keeps changing under us: quick at first, then 0.5 ms naps (~1 s in all)
const MAX_ATTEMPTS = 2064
const QUICK_ATTEMPTS = 64
const NAP = new Int32Array(new SharedArrayBuffer(4))

export class BucketTable {
  readonly sab: SharedArrayBuffer
  readonly capacity: number
  /** clock anchored in the table header: the same `now()` in every thread */
  readonly clock: Clock
  /** after a call: the bucket's TAT (ns since the epoch; 0n when absent). Kept as a bigint: converting costs more
   *  than the CAS, so afterNs derives it only when asked. */
  tat = 0n
  /** after a call: the `now` it was made with */
  at = 0n
  /** after DENIED: ns until the same charge would conform; -1 after OVER_BURST */
  retryNs = 0
  private readonly i32: Int32Array
  private readonly i64: BigInt64Array
  private readonly u8: Uint8Array
  private readonly key: KeyBuffer
  private readonly probe: number
  /** ctl word of the slot locate() returned */
  private ctl = 0
  /** this handle's pin word (index into i32) and the slot it pins (-1: none) */
  private readonly pin: number
  private pinned = -1

  private constructor(sab: SharedArrayBuffer, opts: TableOptions) {
    this.sab = sab
    this.i32 = new Int32Array(sab)
    this.i64 = new BigInt64Array(sab)
    this.u8 = new Uint8Array(sab)
    this.capacity = Number(this.i64[H_CAPACITY])
    this.probe = Math.min(PROBE, this.capacity)
    this.clock = new Clock(this.i64[H_ANCHOR])
    this.key = new KeyBuffer(opts.hash ?? null)
    const handle = Number(Atomics.add(this.i64, H_HANDLES, 1n))
    if (handle >= MAX_HANDLES) throw new LeakyError('LEAKY_INTERNAL', `more than ${MAX_HANDLES} handles on one bucket table`)
    this.pin = PIN_I32 + handle
  }

  /** Bytes of shared memory a table of `capacity` slots takes. */
  static bytesFor(capacity: number): number {
    return HEADER_BYTES + capacity * SLOT_BYTES
  }

  /** A new, empty table. Throws LeakyError LEAKY_CONFIG_INVALID on a bad capacity (config edge). */
  static create(capacity: number, whenFull: WhenFull = 'deny_new', opts: TableOptions = {}): BucketTable {
    if (!Number.isSafeInteger(capacity) || capacity < 1 || capacity > 100_000_000) {
      throw new LeakyError('LEAKY_CONFIG_INVALID', `limits_table.capacity must be an integer from 1 to 100M, got ${capacity}`)
    }
    const sab = new SharedArrayBuffer(BucketTable.bytesFor(capacity))
    const h = new BigInt64Array(sab, 0, 8)
    h[H_MAGIC] = TABLE_MAGIC
    h[H_LAYOUT] = LAYOUT_VERSION
    h[H_CAPACITY] = BigInt(capacity)
    h[H_WHEN_FULL] = whenFull === 'evict_idle' ? 1n : 0n
    h[H_ANCHOR] = opts.anchorNs ?? measureAnchorNs()
    new Int32Array(sab, 0, HEADER_BYTES / 4).fill(-1, PIN_I32)
    return new BucketTable(sab, opts)
  }

  /**
   * This thread's handle on a table created elsewhere (attach once per thread: a handle owns a pin word for good).
   * Throws LeakyError LEAKY_INTERNAL if `sab` is not a table, or beyond MAX_HANDLES handles.
   */
  static attach(sab: SharedArrayBuffer, opts: TableOptions = {}): BucketTable {
    const ok = sab.byteLength >= HEADER_BYTES && (() => {
      const h = new BigInt64Array(sab, 0, 8)
      return h[H_MAGIC] === TABLE_MAGIC && h[H_LAYOUT] === LAYOUT_VERSION &&
        sab.byteLength === BucketTable.bytesFor(Number(h[H_CAPACITY]))
    })()
    if (!ok) throw new LeakyError('LEAKY_INTERNAL', 'not a bucket table (bad magic, layout version or size)')
    return new BucketTable(sab, opts)
  }

  /** after a call: ns from its `now` until the bucket is empty (0 when empty or absent) */
  get afterNs(): number {
    return this.tat > this.at ? Number(this.tat - this.at) : 0
  }

  get whenFull(): WhenFull {
    return Atomics.load(this.i64, H_WHEN_FULL) === 1n ? 'evict_idle' : 'deny_new'
  }

  /** Change the full-table policy for every thread (a reload may change it; capacity needs a new table). */
  setWhenFull(w: WhenFull): void {
    Atomics.store(this.i64, H_WHEN_FULL, w === 'evict_idle' ? 1n : 0n)
  }

  /**
   * Charge `cost` units (a request = 1, tokens = N) to the bucket (limit, scope) if it conforms at `now`.
   * OK: charged, `tat`/`afterNs` = the bucket after it. DENIED: nothing charged, `afterNs` = current drain time,
   * `retryNs` = ns until it would conform. OVER_BURST: cost > burst, never conforms. FULL / BUSY: see Status.
   * A negative cost is a refund (see adjust). Never throws; a non-integer cost is rounded.
   */
  charge(limit: CompiledLimit, scope: string, cost: number, now: bigint): Status {
    const c = units(cost)
    if (c < 0) return this.adjust(limit, scope, c, now)
    this.key.set(limit.keyPrefix, scope)
    const at = limit.calendar === null ? now : limit.calendar.endNs(now)
    // c*T > tau  <=>  c > burst, since tau = burst*T exactly
    if (c > limit.burst) {
      this.lookup(now, at)
      this.retryNs = -1
      return Status.OVER_BURST
    }
    if (c === 0) return this.lookup(now, at)
    const inc = c === 1 ? limit.t : BigInt(c) * limit.t
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const s = this.locate(true, now)
      if (s < 0) return -s as Status
      const r = this.chargeSlot(s, at, inc, limit.tau)
      if (r !== AGAIN) return r as Status
      backoff(attempt)
    }
    return this.busy()
  }

  /**
   * Unconditional change of `delta` units: positive = usage that already happened (may push the bucket beyond its
   * burst: later requests pay the debt), negative = refund (TAT <- max(TAT - |delta|*T, now): never below empty).
   * A refund to an absent bucket is a no-op. Returns OK (afterNs set), FULL or BUSY.
   */
  adjust(limit: CompiledLimit, scope: string, delta: number, now: bigint): Status {
    const c = units(delta)
    this.key.set(limit.keyPrefix, scope)
    const at = limit.calendar === null ? now : limit.calendar.endNs(now)
    if (c === 0) return this.lookup(now, at)
    const up = c > 0
    const inc = BigInt(up ? c : -c) * limit.t
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const s = this.locate(up, now)
      if (s === -NOT_FOUND) return this.settled(0n, at)
      if (s < 0) return -s as Status
      const ci = FIRST_I32 + s * SLOT_I32
      const ti = FIRST_I64 + s * SLOT_I64 + 1
      const g = this.ctl
      this.pinSlot(s)
      let tat = Atomics.load(this.i64, ti)
      for (;;) {
        if (tat < 0n || Atomics.load(this.i32, ci) !== g) break
        const next = up ? force(tat, at, inc, MAX_TAU_NS) : refund(tat, at, inc)
        const prev = Atomics.compareExchange(this.i64, ti, tat, next)
        if (prev === tat) return this.settled(next, at)
        tat = prev
      }
      backoff(attempt)
    }
    return this.busy()
  }

  /** The bucket's state without charging: OK with `afterNs` (0 when absent or drained), or BUSY. */
  peek(limit: CompiledLimit, scope: string, now: bigint): Status {
    this.key.set(limit.keyPrefix, scope)
    return this.lookup(now, limit.calendar === null ? now : limit.calendar.endNs(now))
  }

  stats(): TableStats {
    const h = this.i64
    return {
      capacity: this.capacity,
      bytes: this.sab.byteLength,
      whenFull: this.whenFull,
      inserted: Number(Atomics.load(h, C_INSERTED)),
      reclaimed: Number(Atomics.load(h, C_RECLAIMED)),
      evicted: Number(Atomics.load(h, C_EVICTED)),
      full: Number(Atomics.load(h, C_FULL)),
      busy: Number(Atomics.load(h, C_BUSY)),
    }
  }

  /** Count slots by state (walks the whole table: for /status, not per request). */
  occupancy(now: bigint): Occupancy {
    const o: Occupancy = { live: 0, drained: 0, tombstones: 0, empty: 0 }
    for (let s = 0; s < this.capacity; s++) {
      const st = Atomics.load(this.i32, FIRST_I32 + s * SLOT_I32) & 3
      if (st === EMPTY) o.empty++
      else if (st === TOMB) o.tombstones++
      else if (st === LIVE) {
        const tat = Atomics.load(this.i64, FIRST_I64 + s * SLOT_I64 + 1)
        if (tat > now) o.live++
        else o.drained++
      }
    }
    return o
  }

  /** Every bucket still holding a level at `now`, in the versioned format of snapshot.ts. Safe under traffic. */
  snapshot(now: bigint): Uint8Array {
    const w = new SnapshotWriter(this.capacity, now)
    for (let s = 0; s < this.capacity; s++) {
      const ci = FIRST_I32 + s * SLOT_I32
      const ctl = Atomics.load(this.i32, ci)
      if ((ctl & 3) !== LIVE) continue
      const tat = Atomics.load(this.i64, FIRST_I64 + s * SLOT_I64 + 1)
      if (tat < 0n || tat <= now) continue
      const code = this.i32[ci + 1]
      // copy first, then check ctl: a slot re-claimed while we copied is skipped (it is a new, nearly empty bucket)
      w.add(tat, code, this.u8, (ci + 4) * 4)
      if (Atomics.load(this.i32, ci) !== ctl) w.drop()
    }
    return w.finish()
  }

  /**
   * Load a snapshot into this table (of any capacity): buckets drained by `now` are dropped, the others inserted;
   * a key already present keeps the fuller of the two levels. Returns an error code for a bad buffer, never throws.
   */
  restore(data: Uint8Array, now: bigint): RestoreResult {
    const r = SnapshotReader.open(data)
    if (typeof r === 'string') return { ok: false, error: r }
    let restored = 0
    let dropped = 0
    let full = 0
    while (r.next()) {
      if (r.tat <= now) {
        dropped++
        continue
      }
      this.key.setStored(r.bytes, r.offset, r.code)
      if (this.raise(r.tat, now)) restored++
      else full++
    }
    return { ok: true, restored, dropped, full }
  }

  // TAT <- max(TAT, tat) for the key in the scratch buffer, inserting it; false when it cannot be placed
  private raise(tat: bigint, now: bigint): boolean {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const s = this.locate(true, now)
      if (s < 0) return false
      const ci = FIRST_I32 + s * SLOT_I32
      const ti = FIRST_I64 + s * SLOT_I64 + 1
      this.pinSlot(s)
      let cur = Atomics.load(this.i64, ti)
      for (;;) {
        if (cur < 0n || Atomics.load(this.i32, ci) !== this.ctl) break
        if (cur >= tat) return true
        const prev = Atomics.compareExchange(this.i64, ti, cur, tat)
        if (prev === cur) return true
        cur = prev
      }
      backoff(attempt)
    }
    return false
  }

  private chargeSlot(s: number, now: bigint, inc: bigint, tau: bigint): number {
    const ci = FIRST_I32 + s * SLOT_I32
    const ti = FIRST_I64 + s * SLOT_I64 + 1
    const g = this.ctl
    this.pinSlot(s)
    let tat = Atomics.load(this.i64, ti)
    for (;;) {
      // ctl re-read after each TAT read: the seqlock check that the TAT is this key's (see the header comment)
      if (tat < 0n || Atomics.load(this.i32, ci) !== g) return AGAIN
      const next = admit(tat, now, inc, tau)
      if (next === NONCONFORMING) {
        this.tat = tat
        this.at = now
        this.retryNs = Number(retryAfter(tat, now, inc, tau))
        return Status.DENIED
      }
      const prev = Atomics.compareExchange(this.i64, ti, tat, next)
      if (prev === tat) return this.settled(next, now)
      tat = prev
    }
  }

  // afterNs of the scratch key without inserting it; `at`: the bucket's own time (a calendar window's end, else now)
  private lookup(now: bigint, at: bigint): Status {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const s = this.locate(false, now)
      if (s === -NOT_FOUND) return this.settled(0n, at)
      if (s < 0) return -s as Status
      const ci = FIRST_I32 + s * SLOT_I32
      const tat = Atomics.load(this.i64, FIRST_I64 + s * SLOT_I64 + 1)
      if (tat >= 0n && Atomics.load(this.i32, ci) === this.ctl) {
        return this.settled(tat, at)
      }
      backoff(attempt)
    }
    return this.busy()
  }

  // the bucket's TAT as this call found or left it, for afterNs
  private settled(tat: bigint, now: bigint): Status {
    this.tat = tat
    this.at = now
    return Status.OK
  }

  private busy(): Status {
    Atomics.add(this.i64, C_BUSY, 1n)
    return Status.BUSY
  }

  /**
   * The slot of the key in the scratch buffer (its ctl word in this.ctl), inserting it when `insert`; or
   * -NOT_FOUND, -FULL, -BUSY. Never throws.
   */
  private locate(insert: boolean, now: bigint): number {
    const i32 = this.i32
    const i64 = this.i64
    const cap = this.capacity
    const hash = this.key.hash
    const tag = (hash & 0x3fff) << 2
    // multiply-shift maps the hash onto any capacity without a modulo (uses the hash's high bits; the tag the low)
    const start = Math.floor(((hash >>> 0) * cap) / 4294967296)
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      let free = -1
      let freePos = 0
      let freeCtl = 0
      let freeTat = 0n
      let idle = -1
      let idlePos = 0
      let idleCtl = 0
      let idleTat = 0n
      let s = start
      for (let p = 0; p < this.probe;) {
        const ci = FIRST_I32 + s * SLOT_I32
        const ctl = Atomics.load(i32, ci)
        const st = ctl & 3
        if (st === EMPTY) {
          if (free < 0) {
            free = s
            freePos = p
            freeCtl = ctl
          }
          break
        }
        if (st === TOMB) {
          if (free < 0 && !this.pinnedByOther(s)) {
            free = s
            freePos = p
            freeCtl = ctl
          }
        } else if ((ctl & TAG_MASK) === tag && st === BUSY) {
          // maybe our key being inserted by another thread: wait for it, then look at this slot again
          if (!this.waitChange(ci, ctl)) return -Status.BUSY
          continue
        } else {
          if ((ctl & TAG_MASK) === tag && this.keyEquals(ci)) {
            this.ctl = ctl
            return s
          }
          if (insert && st === LIVE) {
            const tat = Atomics.load(i64, FIRST_I64 + s * SLOT_I64 + 1)
            if (tat >= 0n) {
              if (tat <= now) {
                if (free < 0 && !this.pinnedByOther(s)) {
                  free = s
                  freePos = p
                  freeCtl = ctl
                  freeTat = tat
                }
              } else if ((idle < 0 || tat < idleTat) && !this.pinnedByOther(s)) {
                idle = s
                idlePos = p
                idleCtl = ctl
                idleTat = tat
              }
            }
          }
        }
        p++
        s = s + 1 === cap ? 0 : s + 1
      }
      if (!insert) return -NOT_FOUND
      let evict = false
      if (free < 0) {
        if (idle < 0 || Atomics.load(i64, H_WHEN_FULL) !== 1n) {
          Atomics.add(i64, C_FULL, 1n)
          return -Status.FULL
        }
        free = idle
        freePos = idlePos
        freeCtl = idleCtl
        freeTat = idleTat
        evict = true
      }
      const r = this.claim(free, freePos, freeCtl, freeTat, tag, start, now)
      if (r === AGAIN) {
        backoff(attempt)
        continue
      }
      if (r >= 0 && (freeCtl & 3) === LIVE) Atomics.add(i64, evict ? C_EVICTED : C_RECLAIMED, 1n)
      return r
    }
    return -Status.BUSY
  }

  // Take slot s (at probe position pos) for the scratch key; see "Inserting" in the header comment.
  private claim(s: number, pos: number, seen: number, seenTat: bigint, tag: number, start: number, now: bigint): number {
    const i32 = this.i32
    const i64 = this.i64
    const ci = FIRST_I32 + s * SLOT_I32
    const ti = FIRST_I64 + s * SLOT_I64 + 1
    const gen = ((((seen >>> 16) + 1) & 0xffff) << 16) | tag
    if ((seen & 3) === LIVE) {
      if (Atomics.compareExchange(i64, ti, seenTat, SENTINEL) !== seenTat) return AGAIN
      if (Atomics.load(i32, ci) !== seen) {
        Atomics.store(i64, ti, seenTat) // the TAT we took belonged to a newer key: give it back
        return AGAIN
      }
      Atomics.store(i32, ci, gen | BUSY)
    } else {
      if (Atomics.compareExchange(i32, ci, seen, gen | BUSY) !== seen) return AGAIN
      Atomics.store(i64, ti, SENTINEL)
    }
    // a slot that held a key may still be pinned by a charger that validated it before our ctl store: leave it
    if ((seen & 3) !== EMPTY && this.pinnedByOther(s)) {
      Atomics.store(i32, ci, gen | TOMB)
      return AGAIN
    }
    this.pinSlot(s)
    const key = this.key
    i32[ci + 1] = key.code
    const n = keyWords(key.code)
    for (let i = 0; i < KEY_WORDS; i++) i32[ci + 4 + i] = i < n ? key.words[i] : 0
    const dup = this.findRival(s, pos, tag, start)
    if (dup !== 0) {
      Atomics.store(i32, ci, gen | TOMB)
      return dup === 1 ? AGAIN : -Status.BUSY
    }
    Atomics.store(i64, ti, now) // empty bucket: the caller's CAS charges it
    Atomics.store(i32, ci, gen | LIVE)
    Atomics.add(i64, C_INSERTED, 1n)
    this.ctl = gen | LIVE
    return s
  }

  // After claiming slot `mine` (probe position minePos): 0 = no other copy of the key, 1 = yield to another, 2 = BUSY
  private findRival(mine: number, minePos: number, tag: number, start: number): number {
    let s = start
    for (let p = 0; p < this.probe;) {
      if (s !== mine) {
        const ci = FIRST_I32 + s * SLOT_I32
        const ctl = Atomics.load(this.i32, ci)
        const st = ctl & 3
        if (st === EMPTY) return 0
        if ((ctl & TAG_MASK) === tag) {
          if (st === LIVE && this.keyEquals(ci) && Atomics.load(this.i32, ci) === ctl) return 1
          if (st === BUSY) {
            if (p < minePos) return 1
            if (!this.waitChange(ci, ctl)) return 2
            continue
          }
        }
      }
      p++
      s = s + 1 === this.capacity ? 0 : s + 1
    }
    return 0
  }

  // Publish "I may CAS slot s" before validating it (hazard pointer; see the header comment). The pin stays until this
  // handle works on another slot, so a hot key costs no store at all.
  private pinSlot(s: number): void {
    if (this.pinned !== s) {
      Atomics.store(this.i32, this.pin, s)
      this.pinned = s
    }
  }

  private pinnedByOther(s: number): boolean {
    const n = Math.min(Number(Atomics.load(this.i64, H_HANDLES)), MAX_HANDLES)
    for (let i = 0; i < n; i++) {
      const p = PIN_I32 + i
      if (p !== this.pin && Atomics.load(this.i32, p) === s) return true
    }
    return false
  }

  private keyEquals(ci: number): boolean {
    const i32 = this.i32
    const key = this.key
    if (i32[ci + 1] !== key.code) return false
    const w = key.words
    const n = keyWords(key.code)
    for (let i = 0; i < n; i++) if (i32[ci + 4 + i] !== w[i]) return false
    return true
  }

  // Wait for a claimed slot to be published or released: spin briefly, then sleep in short steps up to WAIT_MS.
  private waitChange(ci: number, ctl: number): boolean {
    for (let i = 0; i < 256; i++) if (Atomics.load(this.i32, ci) !== ctl) return true
    const deadline = performance.now() + WAIT_MS
    while (Atomics.load(this.i32, ci) === ctl) {
      if (performance.now() > deadline) return false
      Atomics.wait(this.i32, ci, ctl, 0.05)
    }
    return true
  }
}

function backoff(attempt: number): void {
  if (attempt >= QUICK_ATTEMPTS) Atomics.wait(NAP, 0, 0, 0.5)
}

// cost as a safe integer: rounded, NaN -> 0, clamped to +-2^53 (BigInt() of a non-integer would throw)
function units(cost: number): number {
  if (Number.isSafeInteger(cost)) return cost
  if (cost !== cost) return 0
  if (cost > Number.MAX_SAFE_INTEGER) return Number.MAX_SAFE_INTEGER
  if (cost < -Number.MAX_SAFE_INTEGER) return -Number.MAX_SAFE_INTEGER
  return Math.round(cost)
}
