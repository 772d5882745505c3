// Reload on config file change (`leaky start --watch`, or `watch: true` in the config), and on a change of the TLS
// files it names (a renewed certificate). Editors save by writing a temp file and renaming it over the old one,
// which replaces the inode a plain file watch follows (so does certbot, swapping symlinks), so the watch is on each
// file's directory, filtered by name. Changes are debounced: one reload after the burst of events a save makes.
import { watch, type FSWatcher } from 'node:fs'
import path from 'node:path'

export const DEBOUNCE_MS = 300

/** The identity of a set of watched files: resolved, deduplicated, sorted. */
export function watchKey(files: readonly string[]): string {
  return [...new Set(files.map((f) => path.resolve(f)))].sort().join('\n')
}

export class ConfigWatcher {
  readonly #watchers: FSWatcher[] = []
  #timer: NodeJS.Timeout | null = null
  /** the files watched, in a stable order (a reload that names other TLS files needs a new watcher) */
  readonly files: string

  constructor(file: string | readonly string[], onChange: () => void, debounceMs = DEBOUNCE_MS) {
    this.files = watchKey(typeof file === 'string' ? [file] : file)
    const files = this.files.split('\n')
    const byDir = new Map<string, Set<string>>()
    for (const f of files) {
      const dir = path.dirname(f)
      if (!byDir.has(dir)) byDir.set(dir, new Set())
      byDir.get(dir)!.add(path.basename(f))
    }
    for (const [dir, names] of byDir) {
      let w: FSWatcher
      try {
        w = watch(dir, { persistent: false }, (_event, changed) => {
          if (changed !== null && !names.has(changed.toString())) return
          if (this.#timer !== null) clearTimeout(this.#timer)
          this.#timer = setTimeout(() => {
            this.#timer = null
            onChange()
          }, debounceMs)
        })
      } catch {
        // a directory that cannot be watched (gone, no permission): reloads by signal still work
        continue
      }
      // a watch error (directory removed) must not take the master down; reloads by signal still work
      w.on('error', () => undefined)
      this.#watchers.push(w)
    }
  }

  close(): void {
    if (this.#timer !== null) clearTimeout(this.#timer)
    for (const w of this.#watchers) w.close()
  }
}
