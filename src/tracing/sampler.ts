// The head sampling decision, made once per request in accept at the cost of a few integer operations. It is the
// OpenTelemetry SDK's TraceIdRatioBased algorithm (sdk-trace TraceIdRatioBasedSampler: the four 32-bit words of the
// trace id XORed, compared with ratio × 2³²−1), wrapped in ParentBased when parent_based is on — so a service
// behind the proxy with the same ratio decides the same trace the same way. Written out here instead of calling the
// SDK's sampler because that one returns a new result object per call and ParentBased needs a Context built per
// request (test/tracing/sampler.test.ts checks the two agree).
import type { Config } from '../config/index.js'

export interface SamplerPlan {
  /** accumulate(traceId) below it: sampled. 0: never, 2³²: always */
  readonly bound: number
  /** an incoming traceparent's sampled flag decides (ParentBased), else only the ratio does */
  readonly parentBased: boolean
  /** the ratio the bound came from, for /status and the start log */
  readonly ratio: number
}

/** OTEL_TRACES_SAMPLER values (the SDK's names) → parent-based?, and the ratio they imply without an ARG. */
const ENV_SAMPLERS: Record<string, { parent: boolean; ratio: number | null }> = {
  always_on: { parent: false, ratio: 1 },
  always_off: { parent: false, ratio: 0 },
  traceidratio: { parent: false, ratio: null },
  parentbased_always_on: { parent: true, ratio: 1 },
  parentbased_always_off: { parent: true, ratio: 0 },
  parentbased_traceidratio: { parent: true, ratio: null },
}

export const DEFAULT_RATIO = 0.01

/** Config first, then OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG, then the defaults (1 %, parent-based). */
export function compileSampler(t: NonNullable<Config['tracing']>, env: NodeJS.ProcessEnv = process.env): SamplerPlan {
  const named = ENV_SAMPLERS[(env.OTEL_TRACES_SAMPLER ?? '').trim().toLowerCase()]
  const arg = Number(env.OTEL_TRACES_SAMPLER_ARG)
  const envRatio = named !== undefined && named.ratio !== null ? named.ratio
    : env.OTEL_TRACES_SAMPLER_ARG !== undefined && env.OTEL_TRACES_SAMPLER_ARG.trim() !== '' && arg >= 0 && arg <= 1 ? arg : null
  const ratio = t.sample ?? envRatio ?? DEFAULT_RATIO
  const parentBased = t.parent_based ?? named?.parent ?? true
  return { bound: ratio >= 1 ? 0x100000000 : Math.floor(ratio * 0xffffffff), parentBased, ratio }
}

/** The SDK's accumulate: the four 32-bit words of a 32-hex-digit trace id, XORed. */
export function accumulate(traceId: string): number {
  let acc = 0
  for (let i = 0; i < 32; i += 8) {
    let part = 0
    for (let j = 0; j < 8; j++) {
      const c = traceId.charCodeAt(i + j)
      part = (part << 4) | (c < 58 ? c - 48 : c < 71 ? c - 55 : c - 87)
    }
    acc = (acc ^ part) >>> 0
  }
  return acc
}

/** Sampled? `parentFlags`: the incoming traceparent's flags byte, or -1 for a trace this proxy starts. */
export function sampled(p: SamplerPlan, traceId: string, parentFlags: number): boolean {
  if (parentFlags >= 0 && p.parentBased) return (parentFlags & 1) === 1
  return accumulate(traceId) < p.bound
}
