import {
  LAMBDA_ARCHITECTURE,
  LAMBDA_ESBUILD_PLUGINS,
  LAMBDA_EXTERNALS,
  LAMBDA_RUNTIME,
  LAMBDA_SPLITTING,
} from "./bundling.js";
import type { PermissionTargets } from "./permissions.js";
import { adminToken, databaseUrl } from "./secrets.js";
import { stagingBucket } from "./storage.js";
import {
  workspaceInstanceProfile,
  workspaceInstanceRole,
  workspaceSecurityGroup,
  workspaceSubnetIds,
} from "./workspace-compute.js";

/**
 * What the API and the sweep functions share: runtime, architecture and bundling (reasons in
 * infra/bundling.ts), the role's trust, and the settings.
 */
export const lambdaDefaults = {
  runtime: LAMBDA_RUNTIME,
  architecture: LAMBDA_ARCHITECTURE,
  nodejs: {
    format: "esm",
    minify: true,
    splitting: LAMBDA_SPLITTING,
    plugins: LAMBDA_ESBUILD_PLUGINS,
    esbuild: { external: LAMBDA_EXTERNALS },
  },
  transform: {
    // SST's function role also trusts the account root (for `sst dev`'s live Lambda, which
    // assumes it from a laptop). Only Lambda may assume these roles; `npm start` is the local
    // mode, not `sst dev`.
    role: {
      assumeRolePolicy: aws.iam.assumeRolePolicyForPrincipal({ Service: "lambda.amazonaws.com" }),
    },
  },
} satisfies Partial<sst.aws.FunctionArgs>;

/** `DEPLOYMENT_ID`: the tag value that marks this stage's instances. */
export const deploymentId = `${$app.name}-${$app.stage}`;

export const permissionTargets: PermissionTargets<$util.Input<string>> = {
  deploymentId,
  stagingObjectsArn: $interpolate`${stagingBucket.arn}/*`,
  instanceRoleArn: workspaceInstanceRole.arn,
  securityGroupArn: workspaceSecurityGroup.arn,
};

/** The settings both functions read through `lib/config.ts` (SPEC §3). */
export function lambdaEnvironment(
  platformUrl: $util.Input<string>,
): Record<string, $util.Input<string>> {
  return {
    ADMIN_TOKEN: adminToken.value,
    DATABASE_URL: databaseUrl.value,
    DEPLOYMENT_ID: deploymentId,
    PLATFORM_URL: platformUrl,
    STAGING_BUCKET: stagingBucket.name,
    WORKSPACE_INSTANCE_PROFILE: workspaceInstanceProfile.name,
    WORKSPACE_SUBNET_IDS: workspaceSubnetIds.apply((ids) => ids.join(",")),
    WORKSPACE_SECURITY_GROUP_IDS: workspaceSecurityGroup.id,
  };
}
