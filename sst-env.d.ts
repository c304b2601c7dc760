/* Hand-maintained: the types of `Resource.*` from the `sst` package for this app's linkable
   components. `sst deploy` / `sst dev` regenerate this file (they need AWS); keep it in step with
   infra/ when adding a linkable component. The runtime code does not read `Resource` — the
   functions get their settings as environment variables (see infra/secrets.ts) — so this only
   serves scripts run with `sst shell`. */
/* biome-ignore-all lint: mirrors a generated file */

import "sst";
declare module "sst" {
  export interface Resource {
    AdminToken: {
      type: "sst.sst.Secret";
      value: string;
    };
    Api: {
      type: "sst.aws.ApiGatewayV2";
      url: string;
    };
    DatabaseUrl: {
      type: "sst.sst.Secret";
      value: string;
    };
    StagingBucket: {
      name: string;
      type: "sst.aws.Bucket";
    };
  }
}
export {};
