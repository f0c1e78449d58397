/**
 * A minimal ONNX ModelProto writer (protobuf wire format by hand), enough to
 * build one-op graphs (MatMul, GroupQueryAttention) for the peer benchmark
 * against onnxruntime-web's WebGPU execution provider. Field numbers are
 * those of onnx.proto.
 */
type Bytes = number[];

function varint(n: number): Bytes {
  const out: Bytes = [];
  let v = BigInt(n);
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v) b |= 0x80;
    out.push(b);
  } while (v);
  return out;
}
const key = (field: number, wire: number) => varint((field << 3) | wire);
const vint = (field: number, n: number): Bytes => [...key(field, 0), ...varint(n)];
const bytes = (field: number, b: Bytes): Bytes => [...key(field, 2), ...varint(b.length), ...b];
const str = (field: number, s: string): Bytes => bytes(field, [...new TextEncoder().encode(s)]);

export type Dim = number | string;
export const FLOAT = 1;
export const INT32 = 6;
export const INT64 = 7;

function valueInfo(name: string, elemType: number, dims: Dim[]): Bytes {
  const shape = dims.flatMap((d) => bytes(1, typeof d === 'number' ? vint(1, d) : str(2, d)));
  const tensorType = [...vint(1, elemType), ...bytes(2, shape)];
  return [...str(1, name), ...bytes(2, bytes(1, tensorType))];
}

export interface OnnxNode {
  op: string;
  domain?: string;
  inputs: string[];
  outputs: string[];
  intAttrs?: Record<string, number>;
  floatAttrs?: Record<string, number>;
}

function node(n: OnnxNode): Bytes {
  const attrs: Bytes = [];
  for (const [k, v] of Object.entries(n.intAttrs ?? {})) attrs.push(...bytes(5, [...str(1, k), ...vint(20, 2), ...vint(3, v)]));
  for (const [k, v] of Object.entries(n.floatAttrs ?? {})) {
    const f = new Uint8Array(new Float32Array([v]).buffer);
    attrs.push(...bytes(5, [...str(1, k), ...vint(20, 1), ...key(2, 5), ...f]));
  }
  return [
    ...n.inputs.flatMap((i) => str(1, i)),
    ...n.outputs.flatMap((o) => str(2, o)),
    ...str(3, n.op + '_0'),
    ...str(4, n.op),
    ...(n.domain ? str(7, n.domain) : []),
    ...attrs,
  ];
}

export interface OnnxIo {
  name: string;
  type: number;
  dims: Dim[];
}

/** A one-graph model; opset 17 for the default domain and 1 for com.microsoft. */
export function onnxModel(nodes: OnnxNode[], inputs: OnnxIo[], outputs: OnnxIo[]): Uint8Array {
  const graph = [
    ...nodes.flatMap((n) => bytes(1, node(n))),
    ...str(2, 'g'),
    ...inputs.flatMap((i) => bytes(11, valueInfo(i.name, i.type, i.dims))),
    ...outputs.flatMap((o) => bytes(12, valueInfo(o.name, o.type, o.dims))),
  ];
  const model = [...vint(1, 8), ...bytes(8, [...str(1, ''), ...vint(2, 17)]), ...bytes(8, [...str(1, 'com.microsoft'), ...vint(2, 1)]), ...bytes(7, graph)];
  return new Uint8Array(model);
}
