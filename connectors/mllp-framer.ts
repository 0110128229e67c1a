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
}

export class MllpFramer {
  private readonly maxFrameBytes: number;
  private inFrame = false;
  /** The previous chunk ended inside a frame on an FS whose CR has not been seen yet. */
  private pendingFs = false;
  private parts: Buffer[] = [];
  private size = 0;
  private failed = false;

  constructor(options: MllpFramerOptions = {}) {
    this.maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
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
    this.size += bytes.length;
    if (this.size > this.maxFrameBytes) {
      this.failed = true;
      this.parts = [];
      events.push({
        type: 'error',
        error: new MllpFramingError(
          'MLLP_FRAME_TOO_LARGE',
          `MLLP frame exceeds ${this.maxFrameBytes} bytes; the connection is closed`,
          'raise the listener option maxFrameBytes if such messages are legitimate, or check that the sender ends each message with FS CR (0x1C 0x0D)',
        ),
      });
      return false;
    }
    this.parts.push(bytes);
    return true;
  }

  private closeFrame(): FramerEvent {
    const payload = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts);
    this.reset();
    return { type: 'frame', payload };
  }

  private reset(): void {
    this.inFrame = false;
    this.pendingFs = false;
    this.parts = [];
    this.size = 0;
  }
}
