// Reload on config file change (`leaky start --watch`, or `watch: true` in the config). Editors save by writing a
// temp file and renaming it over the old one, which replaces the inode a plain file watch follows, so the watch is
// on the directory, filtered by name. Changes are debounced: one reload after the burst of events a save makes.
import { watch, type FSWatcher } from 'node:fs'
import path from 'node:path'

export const DEBOUNCE_MS = 300

export class ConfigWatcher {
  readonly #watcher: FSWatcher
  #timer: NodeJS.Timeout | null = null

  constructor(file: string, onChange: () => void, debounceMs = DEBOUNCE_MS) {
    const name = path.basename(file)
    this.#watcher = watch(path.dirname(path.resolve(file)), { persistent: false }, (_event, changed) => {
      if (changed !== null && changed.toString() !== name) return
      if (this.#timer !== null) clearTimeout(this.#timer)
      this.#timer = setTimeout(() => {
        this.#timer = null
        onChange()
      }, debounceMs)
    })
    // a watch error (directory removed) must not take the master down; reloads by signal still work
    this.#watcher.on('error', () => undefined)
  }

  close(): void {
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#watcher.close()
  }
}
