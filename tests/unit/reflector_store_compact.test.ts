// The Reflector's cache and sync tests again, with `store: "compact"` and the StubServer
// answering protobuf (tests/unit/_protobuf_wire.ts), so the same scripts check the compact store
// over real protobuf bytes: indexes, transforms, events, changes, get and keys, live views,
// atomic resyncs, fallbacks, retries.

import { runCompact } from "./_helpers.ts";

runCompact();
await import("./reflector_cache.test.ts");
await import("./reflector_sync.test.ts");
