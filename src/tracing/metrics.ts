// The tracing counters on /metrics: kept by the generation's exporter (export.ts), read at scrape time.
import { Counter, type Registry } from 'prom-client'
import type { TracingCounters } from './export.js'

export function registerTracingMetrics(registry: Registry, c: TracingCounters): void {
  const value = (name: string, help: string, get: () => number) =>
    new Counter({ name, help, registers: [registry], collect(this: Counter) {
      this.reset()
      this.inc(get())
    } })
  value('leaky_tracing_dropped_spans_total', 'Spans dropped instead of exported: export queue full, export failed, or tracing turned off meanwhile.', () => c.dropped)
  value('leaky_tracing_export_errors_total', 'OTLP export requests that failed (after the exporter\'s own retries).', () => c.exportErrors)
  value('leaky_tracing_exported_spans_total', 'Spans the collector accepted.', () => c.exported)
  value('leaky_tracing_invalid_traceparent_total', 'Incoming traceparent headers that did not parse: the request started a new trace.', () => c.invalid)
}
