/** Loading a FileDescriptorSet (`buf build -o FILE.binpb`) into a registry of its services and messages. */
import { readFileSync } from "node:fs";
import { createFileRegistry, type DescField, type DescMessage, type FileRegistry, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";

/** Reads and links the descriptor set at `path`; throws an Error that says what is wrong with it. */
export function loadDescriptorSet(path: string): FileRegistry {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new Error(`cannot read the descriptor set ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let registry: FileRegistry;
  try {
    const set = fromBinary(FileDescriptorSetSchema, bytes);
    if (set.file.length === 0) throw new Error("it holds no files");
    registry = createFileRegistry(set);
  } catch (e) {
    throw new Error(`${path} is not a usable FileDescriptorSet (make one with \`buf build -o ${path}\`, imports included): ${(e as Error).message}`);
  }
  return registry;
}

/**
 * Resolves `user.id` in `message`: the chain of fields, each named by its .proto name or its JSON
 * name; every field but the last must be a singular message. A string says why it cannot be.
 */
export function resolveFieldPath(message: DescMessage, path: string): DescField[] | string {
  const chain: DescField[] = [];
  let current: DescMessage | undefined = message;
  for (const name of path.split(".")) {
    if (current === undefined) return `${chain.at(-1)!.name} is not a message field, so ${path} cannot go inside it`;
    const field: DescField | undefined = current.fields.find((f) => f.name === name || f.jsonName === name);
    if (field === undefined) return `${current.typeName} has no field ${name}`;
    chain.push(field);
    current = field.fieldKind === "message" ? field.message : undefined;
  }
  return chain;
}
