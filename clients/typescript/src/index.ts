export { Client, ReelforgeError } from "./client";
export type { ConnectOptions } from "./client";
