// The tracing section compiled into the worker plan once per config: what a request needs to decide, at the cost
// of a field read, whether it is traced (sampler.ts) and whether its failure is exported anyway (hooks.ts).
import type { Config } from '../config/index.js'
import { compileSampler, type SamplerPlan } from './sampler.js'

export interface TracingPlan {
  readonly sampler: SamplerPlan
  /** a 429 is a tail signal too: exported even when not sampled */
  readonly sampleDenied: boolean
}

/** null: no tracing section — accept, forward and account then behave exactly as without tracing. */
export function compileTracing(section: Config['tracing']): TracingPlan | null {
  if (section === undefined) return null
  return { sampler: compileSampler(section), sampleDenied: section.sample_denied }
}
