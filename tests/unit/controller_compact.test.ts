// The controller runtime tests again, with the primary's shared cache on `store: "compact"` and
// the FakeApiServer answering protobuf (tests/unit/_protobuf_wire.ts): reconciles, predicates,
// owner mapping, read-your-writes, backoff and shutdown over a cache of bytes. Custom resources
// (`Foo`) stay JSON, so those tests check the compact store's JSON path.

import { runCompact } from "./_helpers.ts";

runCompact();
await import("./controller.test.ts");
