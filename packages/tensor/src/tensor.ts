// Tensor: a shape, a dtype and contiguous GPU storage from the pool. Views (reshape) share storage by refcount.
import { rt } from './runtime.ts';

export type DType = 'f32' | 'i32' | 'u32' | 'f16';
export type Shape = readonly number[];
export type HostArray = Float32Array | Int32Array | Uint32Array | Uint16Array;

export const BYTES: Record<DType, number> = { f32: 4, i32: 4, u32: 4, f16: 2 };

export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function checkShape(shape: Shape): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new Error(`invalid shape [${shape.join(', ')}]`);
  }
}

/** Refcounted GPU storage: the buffer goes back to the pool when the last view is disposed. */
class Storage {
  refs = 1;
  constructor(
    readonly buffer: GPUBuffer,
    readonly bytes: number,
  ) {}
}

/** The alignment of a packed view's offset: minStorageBufferOffsetAlignment (256 on every adapter we know). */
function viewAlignment(): number {
  return Math.max(256, rt().ctx.limits.minStorageBufferOffsetAlignment ?? 256);
}

// Scopes: tensors made inside scope(fn) are disposed when it returns, except what it returns or keep()s.
const scopes: Set<Tensor>[] = [];

export class Tensor {
  private storage: Storage | null;
  readonly shape: Shape;
  readonly dtype: DType;
  readonly size: number;
  /** where this tensor starts in its storage, in bytes: 0 except for the views of Tensor.packed() */
  readonly offset: number;

  private constructor(storage: Storage, shape: Shape, dtype: DType, offset = 0) {
    this.storage = storage;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.size = numel(shape);
    this.offset = offset;
    scopes[scopes.length - 1]?.add(this);
  }

  /**
   * Several tensors in one storage buffer, each at an aligned offset (zero-filled): parameters that one kernel updates
   * all at once (the optimiser's multi-tensor step), or gradients zeroed by one fill. Returns the views and `whole`, a
   * flat f32/.. view over the entire buffer (padding included) for such kernels. Disposing every view and `whole` frees
   * the buffer.
   */
  static packed(shapes: Shape[], dtype: DType = 'f32'): { views: Tensor[]; whole: Tensor } {
    const align = viewAlignment();
    const offsets: number[] = [];
    let bytes = 0;
    for (const s of shapes) {
      checkShape(s);
      offsets.push(bytes);
      bytes += Math.ceil((numel(s) * BYTES[dtype]) / align) * align;
    }
    const whole = Tensor.empty([Math.max(1, bytes / BYTES[dtype])], dtype);
    whole.clear();
    const st = whole.storage!;
    const views = shapes.map((s, i) => {
      st.refs++;
      return new Tensor(st, s, dtype, offsets[i]!);
    });
    return { views, whole };
  }

  /** An uninitialised tensor (contents are whatever the pooled buffer held). */
  static empty(shape: Shape, dtype: DType = 'f32'): Tensor {
    checkShape(shape);
    const bytes = numel(shape) * BYTES[dtype];
    const limit = rt().ctx.limits.maxStorageBufferBindingSize;
    if (bytes > limit) {
      throw new Error(
        `tensor [${shape.join(', ')}] ${dtype} needs ${bytes} bytes, over the adapter's maxStorageBufferBindingSize ` +
          `(${limit} bytes) by ${bytes - limit} bytes`,
      );
    }
    return new Tensor(new Storage(rt().pool.acquire(Math.max(bytes, 4)), bytes), shape, dtype);
  }

  static fromArray(data: ArrayLike<number> | HostArray, shape: Shape = [data.length], dtype?: DType): Tensor {
    const dt: DType = dtype ?? (data instanceof Int32Array ? 'i32' : data instanceof Uint32Array ? 'u32' : 'f32');
    if (numel(shape) !== data.length) throw new Error(`fromArray: ${data.length} values do not fill shape [${shape.join(', ')}]`);
    const t = Tensor.empty(shape, dt);
    t.write(data);
    return t;
  }

  /** The whole storage buffer. Kernels bind `binding` instead, which also places a packed view at its offset. */
  get buffer(): GPUBuffer {
    if (!this.storage) throw new Error('use of a disposed tensor');
    if (this.offset !== 0) throw new Error(`${this} is a packed view at byte ${this.offset}: bind it with .binding`);
    return this.storage.buffer;
  }

  /** The storage buffer and this tensor's byte offset in it (buffer-to-buffer copies take both). */
  get place(): { buffer: GPUBuffer; offset: number } {
    if (!this.storage) throw new Error('use of a disposed tensor');
    return { buffer: this.storage.buffer, offset: this.offset };
  }

  /** What a kernel binds: the buffer, or for a packed view its window { buffer, offset, size }. */
  get binding(): GPUBuffer | GPUBufferBinding {
    if (!this.storage) throw new Error('use of a disposed tensor');
    if (this.offset === 0) return this.storage.buffer;
    return { buffer: this.storage.buffer, offset: this.offset, size: Math.max(4, Math.ceil(this.bytes / 4) * 4) };
  }

  /** Zero every element (a buffer clear: no kernel). */
  clear(): void {
    if (!this.storage) throw new Error('use of a disposed tensor');
    rt().clear(this.storage.buffer, this.offset, this.bytes);
  }

  /** Upload host values into this tensor (same number of elements, this dtype). */
  write(data: ArrayLike<number> | HostArray): void {
    if (data.length !== this.size) throw new Error(`write: ${data.length} values for ${this}`);
    if (!this.storage) throw new Error('use of a disposed tensor');
    if (data.length > 0) rt().write(this.storage.buffer, toHost(data, this.dtype), this.offset);
  }

  get rank(): number {
    return this.shape.length;
  }

  get bytes(): number {
    return this.size * BYTES[this.dtype];
  }

  get disposed(): boolean {
    return this.storage === null;
  }

  /** A view with another shape over the same storage (free: storage is contiguous). One dim may be -1. */
  reshape(shape: Shape): Tensor {
    const s = [...shape];
    const hole = s.indexOf(-1);
    if (hole >= 0) s[hole] = this.size / numel(s.filter((_, i) => i !== hole));
    if (numel(s) !== this.size || s.some((d) => !Number.isInteger(d) || d < 0)) {
      throw new Error(`reshape: [${this.shape.join(', ')}] cannot become [${shape.join(', ')}]`);
    }
    const st = this.storage;
    if (!st) throw new Error('use of a disposed tensor');
    st.refs++;
    return new Tensor(st, s, this.dtype, this.offset);
  }

  async toArray(): Promise<HostArray> {
    if (!this.storage) throw new Error('use of a disposed tensor');
    const bytes = await rt().read(this.storage.buffer, this.bytes, this.offset);
    switch (this.dtype) {
      case 'f32':
        return new Float32Array(bytes);
      case 'i32':
        return new Int32Array(bytes);
      case 'u32':
        return new Uint32Array(bytes);
      case 'f16':
        return new Uint16Array(bytes);
    }
  }

  /** A single number (the tensor must hold exactly one value). */
  async item(): Promise<number> {
    if (this.size !== 1) throw new Error(`item() needs one value, tensor has ${this.size}`);
    return (await this.toArray())[0]!;
  }

  dispose(): void {
    const st = this.storage;
    if (!st) return;
    this.storage = null;
    if (--st.refs === 0) rt().pool.release(st.buffer);
    for (const s of scopes) s.delete(this);
  }

  toString(): string {
    return `Tensor([${this.shape.join(', ')}], ${this.dtype})`;
  }
}

function toHost(data: ArrayLike<number> | HostArray, dtype: DType): HostArray {
  switch (dtype) {
    case 'f32':
      return data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>);
    case 'i32':
      return data instanceof Int32Array ? data : Int32Array.from(data as ArrayLike<number>);
    case 'u32':
      return data instanceof Uint32Array ? data : Uint32Array.from(data as ArrayLike<number>);
    case 'f16':
      if (data instanceof Uint16Array) return data;
      throw new Error('fromArray: f16 data must be given as raw Uint16Array bits');
  }
}

/** Run fn; dispose every tensor it created except those it returns (a tensor, array or object of tensors) or keep()s. */
export function scope<T>(fn: () => T): T {
  const mine = new Set<Tensor>();
  scopes.push(mine);
  let out: T;
  try {
    out = fn();
  } finally {
    scopes.pop();
  }
  const survivors = new Set<Tensor>();
  collect(out, survivors);
  for (const t of mine) {
    if (survivors.has(t)) scopes[scopes.length - 1]?.add(t);
    else t.dispose();
  }
  return out;
}

/** Exempt tensors from the enclosing scopes' cleanup. */
export function keep<T extends Tensor>(t: T): T {
  for (const s of scopes) s.delete(t);
  return t;
}

function collect(v: unknown, into: Set<Tensor>): void {
  if (v instanceof Tensor) into.add(v);
  else if (Array.isArray(v)) for (const x of v) collect(x, into);
  else if (v && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    for (const x of Object.values(v)) collect(x, into);
  }
}
