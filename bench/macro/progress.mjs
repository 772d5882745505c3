// One progress line on stderr: rewritten in place on a terminal; on a pipe or file only each step's first and
// last line, so a CI log stays short. stdout is left to the table.
const tty = process.stderr.isTTY === true

export class Progress {
  constructor() {
    this.step = ''
    this.width = 0
  }

  /** A new step (scenario · tool · target); `detail` is what changes while it runs. */
  begin(step) {
    this.step = step
    if (tty) this.show('')
    else process.stderr.write(`${step}\n`)
  }

  update(detail) {
    if (tty) this.show(detail)
  }

  end(detail) {
    if (tty) {
      this.show(detail)
      process.stderr.write('\n')
      this.width = 0
    } else {
      process.stderr.write(`${this.step}  ${detail}\n`)
    }
  }

  note(text) {
    if (tty && this.width > 0) process.stderr.write('\n')
    this.width = 0
    process.stderr.write(`${text}\n`)
  }

  show(detail) {
    const line = detail === '' ? this.step : `${this.step}  ${detail}`
    process.stderr.write(`\r${line.padEnd(this.width)}`)
    this.width = line.length
  }
}
