// The metrics SharedArrayBuffer: created once by the generation's main thread, opened by every thread that touches
// it. The stripe count is implied by the buffer's size, so a worker needs nothing but the buffer itself.
import { CAP, layout, stripeWords, type Layout } from './layout.js'
import { LabelTable } from './label-table.js'
import { PairTable } from './pair-table.js'

export interface MetricsViews {
  readonly sab: SharedArrayBuffer
  readonly layout: Layout
  readonly u32: Uint32Array
  readonly i32: Int32Array
  readonly routes: LabelTable
  readonly upstreams: LabelTable
  readonly models: LabelTable
  readonly limits: LabelTable
  readonly keys: LabelTable
  /** (route, upstream) */
  readonly flows: PairTable
  /** (upstream, model) */
  readonly llmPairs: PairTable
}

/** A fresh buffer with `stripes` worker stripes (one per worker thread), label and pair tables initialised. */
export function createMetricsBuffer(stripes: number): SharedArrayBuffer {
  const sab = new SharedArrayBuffer(layout(stripes).words * 4)
  const v = openMetrics(sab)
  for (const t of [v.routes, v.upstreams, v.models, v.limits, v.keys]) t.init()
  v.flows.init()
  v.llmPairs.init()
  return sab
}

export function openMetrics(sab: SharedArrayBuffer): MetricsViews {
  const stripe0 = layout(0).stripe0
  const stripes = Math.max(0, Math.floor((sab.byteLength / 4 - stripe0) / stripeWords()))
  const l = layout(stripes)
  return {
    sab,
    layout: l,
    u32: new Uint32Array(sab),
    i32: new Int32Array(sab),
    routes: new LabelTable(sab, l.labels.routes, CAP.routes),
    upstreams: new LabelTable(sab, l.labels.upstreams, CAP.upstreams),
    models: new LabelTable(sab, l.labels.models, CAP.models),
    limits: new LabelTable(sab, l.labels.limits, CAP.limits),
    keys: new LabelTable(sab, l.labels.keys, CAP.keys),
    flows: new PairTable(sab, l.flows, CAP.flows, CAP.routes, CAP.upstreams),
    llmPairs: new PairTable(sab, l.llmPairs, CAP.llmPairs, CAP.upstreams, CAP.models),
  }
}
