// Client updates held in memory (fl-sim, tests): `columns` returns views, no copies.
import { AntidoteError } from "../errors.js";
import type { UpdateMatrix } from "./types.js";

export function inMemoryUpdates(updates: readonly Float32Array[]): UpdateMatrix {
  const dimension = updates[0]?.length ?? 0;
  updates.forEach((u, i) => {
    if (u.length !== dimension)
      throw new AntidoteError(
        "INPUT_FORMAT",
        `update ${i} has ${u.length} coordinates, update 0 has ${dimension}: every update must have the same shape.`,
      );
  });
  return {
    clients: updates.length,
    dimension,
    columns: (client, start, end) => {
      const u = updates[client];
      if (u === undefined) throw new RangeError(`client ${client} out of range 0..${updates.length - 1}`);
      return u.subarray(start, end);
    },
  };
}
