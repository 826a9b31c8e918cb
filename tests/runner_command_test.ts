/**
 * runner_test.ts once more, with every run spawned by `Deno.Command`
 * (util-linux's setsid before the shell): how a service starts its runs
 * where the native spawn cannot work (native_spawn.ts).
 */
import { forgoNativeSpawn } from "../src/daemon/native_spawn.ts";
import "./runner_test.ts";

forgoNativeSpawn();
