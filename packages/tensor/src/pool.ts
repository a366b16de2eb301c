// A size-class GPU buffer pool. Reuse is stream-ordered: a buffer released while earlier commands in the same
// encoder still read it can be handed out at once, because dispatches execute in submission order.

export interface PoolStats {
  /** bytes in buffers currently held by tensors */
  bytesLive: number;
  /** bytes in buffers waiting in the free lists */
  bytesPooled: number;
  /** GPU buffers created since start (a steady-state loop should not move this) */
  allocations: number;
  /** acquisitions served from the free lists */
  reuses: number;
  /** the largest bytesLive seen */
  peakBytesLive: number;
}

/** Round a byte size up to its class: powers of two up to 1 MiB, then steps of 1/8 of the power of two. */
export function sizeClass(bytes: number): number {
  const b = Math.max(256, Math.ceil(bytes / 4) * 4);
  const p = 2 ** Math.ceil(Math.log2(b));
  if (p <= 1 << 20) return p;
  const step = p / 16;
  return Math.ceil(b / step) * step;
}

// GPUBufferUsage.STORAGE | COPY_SRC | COPY_DST (spec values; the globals exist only after device acquisition).
export const STORAGE_USAGE = 0x80 | 0x04 | 0x08;

export class BufferPool {
  private free = new Map<number, GPUBuffer[]>();
  readonly stats: PoolStats = { bytesLive: 0, bytesPooled: 0, allocations: 0, reuses: 0, peakBytesLive: 0 };

  constructor(
    private device: GPUDevice,
    private maxBufferSize: number,
    /** buffers are bound whole, so a class must not round a bindable tensor past the binding limit */
    private maxBindingSize = Infinity,
  ) {}

  acquire(bytes: number): GPUBuffer {
    const exact = Math.max(256, Math.ceil(bytes / 16) * 16);
    let size = exact <= this.maxBindingSize ? Math.min(sizeClass(bytes), Math.max(exact, this.maxBindingSize)) : sizeClass(bytes);
    if (size > this.maxBufferSize) {
      // the size class rounds up: a tensor that fits the limit only without rounding gets its exact size
      if (exact > this.maxBufferSize) {
        const over = bytes > this.maxBufferSize ? `by ${bytes - this.maxBufferSize} bytes` : `once rounded up to ${exact} bytes`;
        throw new Error(`tensor of ${bytes} bytes exceeds the adapter's maxBufferSize (${this.maxBufferSize} bytes) ${over}`);
      }
      size = exact;
    }
    const list = this.free.get(size);
    let buf = list?.pop();
    if (buf) {
      this.stats.bytesPooled -= size;
      this.stats.reuses++;
    } else {
      buf = this.device.createBuffer({ size, usage: STORAGE_USAGE });
      this.stats.allocations++;
    }
    this.stats.bytesLive += size;
    this.stats.peakBytesLive = Math.max(this.stats.peakBytesLive, this.stats.bytesLive);
    return buf;
  }

  release(buf: GPUBuffer): void {
    const size = buf.size;
    let list = this.free.get(size);
    if (!list) this.free.set(size, (list = []));
    list.push(buf);
    this.stats.bytesLive -= size;
    this.stats.bytesPooled += size;
  }

  /** Give every pooled buffer back to the driver. */
  trim(): void {
    for (const list of this.free.values()) for (const b of list) b.destroy();
    this.free.clear();
    this.stats.bytesPooled = 0;
  }
}
