/** Comparison helpers shared by Node tests and the in-browser test page. */
export interface Diff {
  maxAbs: number;
  maxRel: number;
  index: number;
  actual: number;
  expected: number;
  refMax: number;
}

export function diff(actual: ArrayLike<number>, expected: ArrayLike<number>): Diff {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} != expected ${expected.length}`);
  let maxAbs = 0,
    index = -1,
    refMax = 0;
  for (let i = 0; i < expected.length; i++) refMax = Math.max(refMax, Math.abs(expected[i]));
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i] - expected[i]);
    if (!(d <= maxAbs)) {
      maxAbs = Number.isNaN(d) ? Infinity : d;
      index = i;
      if (!Number.isFinite(maxAbs)) break;
    }
  }
  return {
    maxAbs,
    maxRel: refMax > 0 ? maxAbs / refMax : maxAbs,
    index,
    actual: index >= 0 ? actual[index] : NaN,
    expected: index >= 0 ? expected[index] : NaN,
    refMax,
  };
}

/** Throws naming the index and both values when |a - e| > atol + rtol * max|e| anywhere. */
export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string, rtol = 1e-5, atol = 1e-6): Diff {
  const d = diff(actual, expected);
  if (!(d.maxAbs <= atol + rtol * d.refMax)) {
    throw new Error(`${what}: max error ${d.maxAbs} at index ${d.index} (got ${d.actual}, want ${d.expected}; max |ref| ${d.refMax})`);
  }
  return d;
}

export function relL2(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let num = 0,
    den = 0;
  for (let i = 0; i < expected.length; i++) {
    const d = actual[i] - expected[i];
    num += d * d;
    den += expected[i] * expected[i];
  }
  return Math.sqrt(num / Math.max(den, 1e-30));
}
