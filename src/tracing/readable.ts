// SpanData from a worker → the SDK's ReadableSpan, the shape the official OTLP exporter serialises. Built on the
// main thread at export time, for the spans of one batch only (a span dropped from the queue is never converted).
import { createTraceState, type HrTime, type SpanContext, type Attributes } from '@opentelemetry/api'
import type { ReadableSpan, TimedEvent } from '@opentelemetry/sdk-trace-base'
import type { Resource } from '@opentelemetry/resources'
import type { SpanData } from './span-data.js'

const SAMPLED = 1

export interface Scope {
  resource: Resource
  scope: { name: string; version: string }
}

function hr(epochMs: number): HrTime {
  const sec = Math.floor(epochMs / 1000)
  return [sec, Math.round((epochMs - sec * 1000) * 1e6)]
}

export function toReadable(d: SpanData, sc: Scope): ReadableSpan {
  const traceState = d.traceState === '' ? undefined : createTraceState(d.traceState)
  const ctx: SpanContext = { traceId: d.traceId, spanId: d.spanId, traceFlags: SAMPLED, traceState }
  const events: TimedEvent[] = []
  if (d.events !== null) {
    for (const e of d.events) events.push({ name: e.name, time: hr(e.time), attributes: (e.attrs ?? undefined) as Attributes | undefined })
  }
  const end = Math.max(d.end, d.start)
  return {
    name: d.name,
    kind: d.kind,
    spanContext: () => ctx,
    parentSpanContext: d.parentSpanId === '' ? undefined
      : { traceId: d.traceId, spanId: d.parentSpanId, traceFlags: SAMPLED, isRemote: d.kind === 1, traceState },
    startTime: hr(d.start),
    endTime: hr(end),
    duration: hr(end - d.start),
    status: d.message === '' ? { code: d.status } : { code: d.status, message: d.message },
    attributes: d.attrs as Attributes,
    links: [],
    events,
    ended: true,
    resource: sc.resource,
    instrumentationScope: sc.scope,
    droppedAttributesCount: 0,
    droppedEventsCount: 0,
    droppedLinksCount: 0,
  }
}
