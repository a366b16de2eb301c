// --precision mixed's weight conversion (no GPU): the bits equal the float64 reference rounding, and a value that
// would round past f16's largest finite 65504 is refused naming the tensor — the same bound the safetensors writer uses.
import { describe, it, expect } from 'vitest';
import { ref } from '@dawngrad/tensor';
import { toF16Weight } from '../src/load.ts';

describe('toF16Weight', () => {
  it("gives the reference's f16 bits (round to nearest even, subnormals, signed zero)", () => {
    let s = 7;
    const rand = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32 - 0.5);
    const data = Float32Array.from({ length: 4096 }, (_, i) => rand() * 2 ** ((i % 40) - 24));
    data.set([0, -0, 65504, -65510, 2 ** -25, 3 * 2 ** -25, 1 + 2 ** -11], 0);
    expect(Array.from(toF16Weight(data, 'w', 'model m'))).toEqual(Array.from(ref.toF16Bits(data)));
  });

  it('refuses a value that would become Inf, naming the tensor, and keeps 65519 (it rounds to 65504)', () => {
    expect(() => toF16Weight(Float32Array.of(1, -7e4), 'model.layers.0.mlp.up_proj.weight', 'model m')).toThrow(
      /^model m: model\.layers\.0\.mlp\.up_proj\.weight holds values up to 7\.000e\+4, beyond f16's 65504/,
    );
    expect(() => toF16Weight(Float32Array.of(65520), 'w', 'model m')).toThrow(/beyond f16's 65504/);
    expect(Array.from(toF16Weight(Float32Array.of(65519), 'w', 'model m'))).toEqual([0x7bff]);
  });
});
