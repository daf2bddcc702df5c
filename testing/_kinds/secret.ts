// Internal: Secret behaviour of the fake server: `type: Opaque` and `stringData` folded into
// base64 `data`.

import { isObject, type JsonObject } from "../_json.ts";
import type { KindBehaviour } from "./kind.ts";

export const secretKind: KindBehaviour = {
  defaults(object) {
    if (object.type === undefined) object.type = "Opaque";
    if (isObject(object.stringData)) {
      const data: JsonObject = isObject(object.data) ? object.data as JsonObject : {};
      for (const [k, v] of Object.entries(object.stringData)) {
        data[k] = btoa(String.fromCharCode(...new TextEncoder().encode(String(v))));
      }
      object.data = data;
      delete object.stringData;
    }
  },
};
