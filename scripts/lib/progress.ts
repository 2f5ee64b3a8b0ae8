// Progress of a long-running script: a bar redrawn in place on a terminal, a plain line per 10%
// otherwise (a CI log or a pipe would otherwise fill with carriage-return garbage).

export interface ProgressStream {
  readonly isTTY?: boolean | undefined;
  readonly columns?: number | undefined;
  write(text: string): boolean;
}

export interface Progress {
  /** `fraction` of the work is done (0..1); `detail` is shown next to it. */
  update(fraction: number, detail: string): void;
  /** Leaves the line clean for whatever is printed next. */
  finish(): void;
}

const BAR_WIDTH = 30;
const REDRAW_MS = 100;

/** `[███████░░░░░░░]  42%`; pure, so it can be checked without a terminal. */
export function renderBar(fraction: number, width = BAR_WIDTH): string {
  const clamped = Math.min(1, Math.max(0, Number.isFinite(fraction) ? fraction : 0));
  const filled = Math.floor(clamped * width);
  const percent = `${Math.floor(clamped * 100)}%`.padStart(4);
  return `[${'█'.repeat(filled)}${'░'.repeat(width - filled)}] ${percent}`;
}

export function createProgress(stream: ProgressStream, label: string): Progress {
  if (stream.isTTY === true) {
    let lastDraw = 0;
    let drawn = false;
    return {
      update(fraction, detail) {
        const now = Date.now();
        if (now - lastDraw < REDRAW_MS && fraction < 1) return;
        lastDraw = now;
        drawn = true;
        const line = `${label} ${renderBar(fraction)}  ${detail}`;
        stream.write(`\r${line.slice(0, (stream.columns ?? 120) - 1)}\x1b[K`);
      },
      finish() {
        if (drawn) stream.write('\r\x1b[K');
      },
    };
  }
  let lastStep = 0;
  return {
    update(fraction, detail) {
      const step = Math.floor(Math.min(1, fraction) * 10);
      if (step <= lastStep) return;
      lastStep = step;
      stream.write(`${label} ${step * 10}%  ${detail}\n`);
    },
    finish() {
      // Plain lines need no clean-up.
    },
  };
}
