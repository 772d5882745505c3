// A table of label values in the shared buffer: every thread that meets a new string (a route path, a model name)
// claims the next slot with one Atomics.add and writes the name there; the main thread reads names back at scrape
// time. Each thread keeps its own Map from string to slot, so after the first request a lookup is one Map.get.
//
// Two threads meeting the same new name at the same moment may each claim a slot for it: harmless, the exposition
// merges series by label value. Slot 0 is "other": where everything goes once the table is full.
import { LABEL_ENTRY, LABEL_MAX_BYTES } from './layout.js'

export const OTHER = 'other'

export class LabelTable {
  readonly #i32: Int32Array
  readonly #u8: Uint8Array
  /** word offset of the `next` counter; entry i starts at byte (base + 1) * 4 + i * LABEL_ENTRY */
  readonly #base: number
  readonly cap: number
  readonly #local = new Map<string, number>()
  /** decoded names by slot, filled lazily (a written name never changes) */
  readonly #names: Array<string | undefined>

  constructor(sab: SharedArrayBuffer, base: number, cap: number) {
    this.#i32 = new Int32Array(sab)
    this.#u8 = new Uint8Array(sab)
    this.#base = base
    this.cap = cap
    this.#names = new Array(cap)
  }

  /** Main thread, once, on a fresh buffer: slot 0 is "other", claims start at 1. */
  init(): void {
    this.#write(0, OTHER)
    Atomics.store(this.#i32, this.#base, 1)
  }

  /** The slot of `name`, claiming one if it is new; 0 ("other") once the table is full. */
  intern(name: string): number {
    const hit = this.#local.get(name)
    return hit !== undefined ? hit : this.#miss(name)
  }

  /** Slots in use (claimed; a claimed slot may not be written yet: see name()). */
  get used(): number {
    return Math.min(Atomics.load(this.#i32, this.#base), this.cap)
  }

  /** The name in a slot, or null while its writer has not finished. */
  name(slot: number): string | null {
    const known = this.#names[slot]
    if (known !== undefined) return known
    const off = this.#entry(slot)
    const len = Atomics.load(this.#i32, off >> 2) - 1
    if (len < 0) return null
    const s = Buffer.from(this.#u8.buffer, off + 4, len).toString('utf8')
    this.#names[slot] = s
    return s
  }

  // A miss is rare (the first time this thread meets a name), so it may allocate.
  #miss(name: string): number {
    const label = truncate(name)
    let slot = this.#find(label)
    if (slot < 0) {
      const claimed = Atomics.add(this.#i32, this.#base, 1)
      if (claimed < this.cap) {
        this.#write(claimed, label)
        slot = claimed
      } else {
        slot = 0
      }
    }
    // the local map stays bounded even when clients send endless new names (models): past a few times the table's
    // size, misses go on scanning the table instead of growing the map
    if (this.#local.size < this.cap * 4) this.#local.set(name, slot)
    return slot
  }

  #find(label: string): number {
    const n = this.used
    for (let i = 1; i < n; i++) if (this.name(i) === label) return i
    return -1
  }

  #write(slot: number, label: string): void {
    const bytes = Buffer.from(label, 'utf8')
    const off = this.#entry(slot)
    this.#u8.set(bytes, off + 4)
    // the length is stored last, atomically: a reader that sees it also sees the bytes before it
    Atomics.store(this.#i32, off >> 2, bytes.length + 1)
    this.#names[slot] = label
  }

  #entry(slot: number): number {
    return (this.#base + 1) * 4 + slot * LABEL_ENTRY
  }
}

/** Cut a name to LABEL_MAX_BYTES of UTF-8 without splitting a character. */
export function truncate(name: string): string {
  if (name.length * 3 <= LABEL_MAX_BYTES) return name
  const b = Buffer.from(name, 'utf8')
  if (b.length <= LABEL_MAX_BYTES) return name
  let end = LABEL_MAX_BYTES
  while (end > 0 && (b[end] & 0xc0) === 0x80) end--
  return b.toString('utf8', 0, end)
}
