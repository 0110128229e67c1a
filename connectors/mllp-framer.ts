// MLLP framing (HL7 v2 Transport Specification, MLLP release 2): <VT> payload <FS><CR>.
// Scanned on bytes, front to back, before any decoding: the payload's charset (MSH-18) is only known
// after the frame is complete, and a multi-byte character may straddle two TCP chunks.
// The framer is a pure state machine fed chunk by chunk; it never joins two frames, never drops bytes
// silently and never buffers more than one frame, so the caller controls back-pressure by not reading
// the socket while it is busy with the frames already returned.
import { OncoError } from '../config/errors.ts';

const VT = 0x0b;
const FS = 0x1c;
const CR = 0x0d;

export const DEFAULT_MAX_FRAME_BYTES = 10 * 1024 * 1024;

/** Framing wraps a payload for the wire. */
export function frame(payload: Buffer): Buffer {
  return Buffer.concat([Buffer.of(VT), payload, Buffer.of(FS, CR)]);
}

export class MllpFramingError extends OncoError {
  declare readonly hint: string;
  constructor(code: string, message: string, hint: string) {
    super(code, { message, hint });
  }
}

export type FramerEvent =
  /** One complete payload, without its VT and FS CR. */
  | { type: 'frame'; payload: Buffer }
  /**
   * Bytes that belong to no frame: noise between frames (`outside-frame`), or the start of a frame cut
   * short by a new VT or by the end of the connection (`unterminated-frame`). The peer got no ACK for them.
   */
  | { type: 'stray'; reason: 'outside-frame' | 'unterminated-frame'; bytes: Buffer }
  /** Unrecoverable: the framer accepts no more input and the connection must be closed. */
  | { type: 'error'; error: MllpFramingError };

export interface MllpFramerOptions {
  /** Payload bytes allowed in one frame; beyond this the connection is failed. Default 10 MB. */
  maxFrameBytes?: number;
  /** Shared by every connection of a listener: the sum of their unfinished frames stays under its bound. */
  budget?: FrameBudget;
}

/**
 * Bytes of unfinished frames a listener holds across all its connections. One frame is bounded by
 * maxFrameBytes, but 150 senders each holding an unterminated 9.5 MiB frame would hold 1.4 GB.
 */
export class FrameBudget {
  private used = 0;
  constructor(readonly maxBytes: number) {}

  take(n: number): boolean {
    if (this.used + n > this.maxBytes) return false;
    this.used += n;
    return true;
  }

  give(n: number): void {
    this.used -= n;
  }

  get usedBytes(): number {
    return this.used;
  }
}

export class MllpFramer {
  private readonly maxFrameBytes: number;
  private readonly budget: FrameBudget | undefined;
  private inFrame = false;
  /** The previous chunk ended inside a frame on an FS whose CR has not been seen yet. */
  private pendingFs = false;
  private parts: Buffer[] = [];
  private size = 0;
  private failed = false;

  constructor(options: MllpFramerOptions = {}) {
    this.maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.budget = options.budget;
  }

  /** The connection is gone: its unfinished frame no longer counts against the listener's budget. */
  release(): void {
    this.budget?.give(this.size);
    this.size = 0;
    this.parts = [];
  }

  push(chunk: Buffer): FramerEvent[] {
    const events: FramerEvent[] = [];
    if (this.failed) return events;
    let pos = 0;
    if (this.pendingFs && chunk.length > 0) {
      this.pendingFs = false;
      if (chunk[0] === CR) {
        events.push(this.closeFrame());
        pos = 1;
      } else if (!this.append(Buffer.of(FS), events)) {
        return events;
      }
    }
    while (pos < chunk.length) {
      pos = this.inFrame ? this.scanInside(chunk, pos, events) : this.scanOutside(chunk, pos, events);
      if (this.failed) break;
    }
    return events;
  }

  /** The connection ended: whatever frame was open is reported as unterminated. */
  end(): FramerEvent[] {
    if (this.failed || !this.inFrame) return [];
    if (this.pendingFs) this.parts.push(Buffer.of(FS));
    const bytes = Buffer.concat(this.parts);
    this.reset();
    return [{ type: 'stray', reason: 'unterminated-frame', bytes }];
  }

  private scanOutside(chunk: Buffer, pos: number, events: FramerEvent[]): number {
    const vt = chunk.indexOf(VT, pos);
    const stop = vt === -1 ? chunk.length : vt;
    if (stop > pos) events.push({ type: 'stray', reason: 'outside-frame', bytes: chunk.subarray(pos, stop) });
    if (vt === -1) return chunk.length;
    this.inFrame = true;
    return vt + 1;
  }

  private scanInside(chunk: Buffer, pos: number, events: FramerEvent[]): number {
    const vt = chunk.indexOf(VT, pos);
    let from = pos;
    for (;;) {
      const fs = chunk.indexOf(FS, from);
      if (vt !== -1 && (fs === -1 || vt < fs)) {
        // A new start block inside a frame: the sender gave up on the frame in progress.
        if (!this.append(chunk.subarray(pos, vt), events)) return chunk.length;
        events.push({ type: 'stray', reason: 'unterminated-frame', bytes: Buffer.concat(this.parts) });
        this.reset();
        this.inFrame = true;
        return vt + 1;
      }
      if (fs === -1) {
        this.append(chunk.subarray(pos), events);
        return chunk.length;
      }
      if (fs === chunk.length - 1) {
        if (!this.append(chunk.subarray(pos, fs), events)) return chunk.length;
        this.pendingFs = true;
        return chunk.length;
      }
      if (chunk[fs + 1] === CR) {
        if (!this.append(chunk.subarray(pos, fs), events)) return chunk.length;
        events.push(this.closeFrame());
        return fs + 2;
      }
      // An FS not followed by CR is not an end block; it stays in the payload for the parser to judge.
      from = fs + 1;
    }
  }

  /** Adds payload bytes; false (and an error event) once the frame outgrows the limit. */
  private append(bytes: Buffer, events: FramerEvent[]): boolean {
    if (bytes.length === 0) return true;
    if (this.size + bytes.length > this.maxFrameBytes) {
      return this.fail(
        events,
        new MllpFramingError(
          'MLLP_FRAME_TOO_LARGE',
          `MLLP frame exceeds ${this.maxFrameBytes} bytes; the connection is closed`,
          'raise the listener option maxFrameBytes if such messages are legitimate, or check that the sender ends each message with FS CR (0x1C 0x0D)',
        ),
      );
    }
    if (this.budget && !this.budget.take(bytes.length)) {
      return this.fail(
        events,
        new MllpFramingError(
          'MLLP_LISTENER_FULL',
          `the MLLP listener holds ${this.budget.usedBytes} bytes of unfinished frames (maxBufferedBytes ${this.budget.maxBytes}); the connection is closed`,
          'the sender may resend later; if many large messages arrive at once legitimately, raise maxBufferedBytes of the listener',
        ),
      );
    }
    this.size += bytes.length;
    this.parts.push(bytes);
    return true;
  }

  private fail(events: FramerEvent[], error: MllpFramingError): false {
    this.failed = true;
    this.release();
    events.push({ type: 'error', error });
    return false;
  }

  private closeFrame(): FramerEvent {
    const payload = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts);
    this.reset();
    return { type: 'frame', payload };
  }

  private reset(): void {
    this.budget?.give(this.size);
    this.inFrame = false;
    this.pendingFs = false;
    this.parts = [];
    this.size = 0;
  }
}
