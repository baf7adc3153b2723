/** An instance's answer to a fleet config (ACK or NACK), as it travels through Redis. */
import { z } from "zod";

/** An instance's answer to the latest fleet config it saw. */
export const AnswerSchema = z.object({
  fleet_version: z.number(),
  id: z.string(),
  answer: z.enum(["ack", "nack"]),
  message: z.string().nullable(),
  version: z.number(),
  running_fleet_version: z.number(),
  region: z.string().nullable(),
});

export type Answer = z.infer<typeof AnswerSchema>;

