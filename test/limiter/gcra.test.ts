import t from 'tap'
import { admit, drainIn, force, level, NONCONFORMING, refund, retryAfter } from '../../src/limiter/gcra.js'

const S = 1_000_000_000n // ns per second
const NOW = 1_780_000_000n * S // mid-2026, ns since the epoch
const MONTH = 30n * 86_400n * S

// 10 requests/s, burst 5: T = 100 ms, tau = 500 ms
const T = S / 10n
const TAU = 5n * T

t.test('admit: conform iff max(TAT, now) + c*T - now <= tau', async (t) => {
  const cases: { name: string; tat: bigint; c: bigint; want: bigint }[] = [
    { name: 'empty bucket (TAT in the past), 1 unit', tat: NOW - 10n * S, c: 1n, want: NOW + T },
    { name: 'never used (TAT 0)', tat: 0n, c: 1n, want: NOW + T },
    { name: 'empty bucket, a whole burst at once', tat: NOW, c: 5n, want: NOW + TAU },
    { name: 'empty bucket, burst + 1', tat: NOW, c: 6n, want: NONCONFORMING },
    { name: 'half full, fits exactly', tat: NOW + 3n * T, c: 2n, want: NOW + TAU },
    { name: 'half full, one too many', tat: NOW + 3n * T, c: 3n, want: NONCONFORMING },
    { name: 'full', tat: NOW + TAU, c: 1n, want: NONCONFORMING },
    { name: 'cost 0 on a full bucket conforms and changes nothing', tat: NOW + TAU, c: 0n, want: NOW + TAU },
    { name: 'cost 0 on an over-full (debt) bucket does not conform', tat: NOW + TAU + 1n, c: 0n, want: NONCONFORMING },
  ]
  for (const k of cases) t.equal(admit(k.tat, NOW, k.c * T, TAU), k.want, k.name)
})

t.test('retryAfter = max(TAT, now) + c*T - now - tau, never negative', async (t) => {
  t.equal(retryAfter(NOW + TAU, NOW, T, TAU), T, 'full bucket: one emission interval')
  t.equal(retryAfter(NOW + TAU, NOW, 3n * T, TAU), 3n * T)
  t.equal(retryAfter(NOW + 2n * T, NOW, 4n * T, TAU), T, 'partly full, cost a bit too big')
  t.equal(retryAfter(NOW, NOW, T, TAU), 0n, 'conforming request waits 0')
  // after waiting retryAfter the same request conforms, and not a nanosecond earlier
  const tat = NOW + TAU
  const w = retryAfter(tat, NOW, 2n * T, TAU)
  t.not(admit(tat, NOW + w, 2n * T, TAU), NONCONFORMING)
  t.equal(admit(tat, NOW + w - 1n, 2n * T, TAU), NONCONFORMING)
})

t.test('refund: TAT <- max(TAT - c*T, now): can empty a bucket, never below empty', async (t) => {
  t.equal(refund(NOW + 4n * T, NOW, 2n * T), NOW + 2n * T)
  t.equal(refund(NOW + 2n * T, NOW, 4n * T), NOW, 'more than the level: empty, no credit')
  t.equal(refund(NOW - S, NOW, T), NOW, 'refund on a drained bucket: still just empty')
  // charge then refund of the same cost is exact even when another charge happened in between
  const a = admit(NOW - S, NOW, 2n * T, TAU) // ours
  const b = admit(a, NOW, 1n * T, TAU) // someone else's
  t.equal(refund(b, NOW, 2n * T), admit(NOW - S, NOW, 1n * T, TAU), 'rollback leaves exactly the other charge')
})

t.test('force: unconditional charge may exceed tau (debt), capped', async (t) => {
  t.equal(force(NOW + TAU, NOW, 3n * T, 1000n * S), NOW + TAU + 3n * T)
  t.equal(force(NOW - S, NOW, T, 1000n * S), NOW + T)
  t.equal(force(NOW, NOW, 10n * S, 2n * S), NOW + 2n * S, 'capped')
})

t.test('level and drainIn', async (t) => {
  t.equal(level(NOW + 3n * T, NOW, T), 3)
  t.equal(level(NOW + T / 2n, NOW, T), 0.5)
  t.equal(level(NOW - S, NOW, T), 0, 'drained')
  t.equal(drainIn(NOW + 3n * T, NOW), 3n * T)
  t.equal(drainIn(NOW - 1n, NOW), 0n)
})

t.test('monthly windows and big costs: no overflow, exact', async (t) => {
  // 5M tokens per month, burst one month: T = 518_400 ns, tau = 1 month
  const Tm = MONTH / 5_000_000n
  const tauM = 5_000_000n * Tm
  t.equal(tauM, MONTH)
  let tat = 0n
  for (let i = 0; i < 5; i++) {
    const next = admit(tat, NOW, 1_000_000n * Tm, tauM)
    t.not(next, NONCONFORMING, `million-token request ${i + 1} of 5 fits`)
    tat = next
  }
  t.equal(admit(tat, NOW, Tm, tauM), NONCONFORMING, 'the month is used up')
  t.equal(retryAfter(tat, NOW, 1000n * Tm, tauM), 1000n * Tm, '1000 tokens more need 1000 T')
  t.equal(level(tat, NOW, Tm), 5_000_000)
  // a cost far beyond any bucket: bigint math does not wrap; the request is simply refused
  t.equal(admit(tat, NOW, 9_000_000_000_000n * Tm, tauM), NONCONFORMING)
  // TAT stays well inside int64 even a century ahead with a full 100-year tolerance
  const century = 100n * 365n * 86_400n * S
  const far = admit(NOW, NOW, century, century)
  t.ok(far < 2n ** 63n, 'now + 100 years fits an int64 word')
  t.equal(BigInt.asIntN(64, far), far)
})
