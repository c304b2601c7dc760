/// <reference path="./.sst/platform/config.d.ts" />

// The deployment of workspace-control-plane: the HTTP API, the scheduled sweep, the EC2-event
// function and its EventBridge rule, the staging bucket and what workspace instances run with.
// Components live in infra/; SST forbids top-level imports here, so run() imports them. Runtime
// code never imports infra/.
export default $config({
  app(input) {
    return {
      name: "workspace-control-plane",
      removal: input?.stage === "production" ? "retain" : "remove",
      protect: input?.stage === "production",
      home: "aws",
      // The @pulumi/aws version `sst install` resolves for sst 4.17.1; pinned so a deploy
      // never picks up a new provider unannounced.
      providers: { aws: { version: "7.20.0" } },
    };
  },
  async run() {
    await import("./infra/secrets.js");
    const { stagingBucket } = await import("./infra/storage.js");
    const { workspaceInstanceProfile, workspaceSecurityGroup } = await import(
      "./infra/workspace-compute.js"
    );
    const { api } = await import("./infra/api.js");
    await import("./infra/sweep.js");
    await import("./infra/ec2-events.js");
    return {
      api: api.url,
      stagingBucket: stagingBucket.name,
      workspaceInstanceProfile: workspaceInstanceProfile.name,
      workspaceSecurityGroup: workspaceSecurityGroup.id,
    };
  },
});
