/**
 * The IAM the Lambda functions get: exactly the AWS actions the code in `lib/` sends, each
 * scoped as tightly as the service allows. Pure data — no SST globals — so the infra test reads
 * the same statements the deployment attaches (test/infra/permissions.test.ts compares them
 * with the AWS SDK commands found in `lib/` and in each function's bundle).
 *
 * Resource- and condition-key support per action follows the Service Authorization Reference
 * (docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2.html,
 * list_awssystemsmanager.html, list_amazons3.html, list_awsidentityandaccessmanagementiam.html).
 * ARNs name the commercial partition (`arn:aws:`); GovCloud or China would need their own.
 */

/** The tag `lib/compute/launch.ts` puts on every instance and volume it launches (TAG_DEPLOYMENT). */
export const DEPLOYMENT_TAG_KEY = "wcp:deployment";

/** The SSM document `lib/compute/commands.ts` sends. */
export const RUN_SHELL_DOCUMENT = "AWS-RunShellScript";

/** Where instances upload commands' output (COMMAND_OUTPUT_PREFIX in lib/compute/staging-bucket.ts). */
export const COMMAND_OUTPUT_PREFIX = "commands/";

/** The same shape as SST's `FunctionPermissionArgs`, generic in how a resource ARN is held. */
export interface PermissionStatement<R = string> {
  actions: string[];
  resources: R[];
  conditions?: { test: string; variable: string; values: string[] }[];
}

/** What the statements are scoped to; ARNs are strings in tests, Pulumi outputs in infra. */
export interface PermissionTargets<R = string> {
  /** Tag value that marks this deployment's instances (`DEPLOYMENT_ID`). */
  deploymentId: string;
  /** `arn:aws:s3:::<bucket>/*` of the staging bucket. */
  stagingObjectsArn: R;
  /** The workspace instance role (the instance profile's role). */
  instanceRoleArn: R;
  /** The workspace security group; RunInstances may attach no other. */
  securityGroupArn: R;
}

const EC2_INSTANCES = "arn:aws:ec2:*:*:instance/*";
const EC2_VOLUMES = "arn:aws:ec2:*:*:volume/*";

/**
 * Every statement either function may need. Each action appears in exactly the statements that
 * grant it; {@link statementsFor} cuts the list down to one function's actions.
 */
export function permissionCatalogue<R>(t: PermissionTargets<R>): PermissionStatement<R | string>[] {
  const ownTag = (variable: string) => ({
    test: "StringEquals",
    variable: `${variable}/${DEPLOYMENT_TAG_KEY}`,
    values: [t.deploymentId],
  });
  return [
    // The running check and the orphan listing. DescribeInstances has no resource-level
    // permissions: "*" is the only resource it accepts.
    { actions: ["ec2:DescribeInstances"], resources: ["*"] },
    // Launch: the new instance and its root volume must carry this deployment's tag in the
    // request (TagSpecifications), so the role cannot start untagged or foreign instances.
    {
      actions: ["ec2:RunInstances"],
      resources: [EC2_INSTANCES, EC2_VOLUMES],
      conditions: [ownTag("aws:RequestTag")],
    },
    // The other resources a launch touches carry no tags of ours: any image (the AMI setting
    // decides), any subnet, the network interface EC2 creates, and only our security group.
    {
      actions: ["ec2:RunInstances"],
      resources: [
        "arn:aws:ec2:*::image/*",
        "arn:aws:ec2:*:*:subnet/*",
        "arn:aws:ec2:*:*:network-interface/*",
        t.securityGroupArn,
      ],
    },
    // TagSpecifications make RunInstances authorize ec2:CreateTags too; allow it only as part of
    // a launch, never on existing resources.
    {
      actions: ["ec2:CreateTags"],
      resources: [EC2_INSTANCES, EC2_VOLUMES],
      conditions: [
        { test: "StringEquals", variable: "ec2:CreateAction", values: ["RunInstances"] },
      ],
    },
    // Terminate, stop, start and read the console of this deployment's instances only.
    {
      actions: [
        "ec2:TerminateInstances",
        "ec2:GetConsoleOutput",
        "ec2:StopInstances",
        "ec2:StartInstances",
      ],
      resources: [EC2_INSTANCES],
      conditions: [ownTag("ec2:ResourceTag")],
    },
    // The instance profile's role, and only towards EC2.
    {
      actions: ["iam:PassRole"],
      resources: [t.instanceRoleArn],
      conditions: [
        { test: "StringEquals", variable: "iam:PassedToService", values: ["ec2.amazonaws.com"] },
      ],
    },
    // The default WORKSPACE_AMI is `resolve:ssm:/aws/service/…`: RunInstances resolves it with the
    // caller's ssm:GetParameters (docs.aws.amazon.com/systems-manager/latest/userguide/
    // parameter-store-ec2-aliases.html). AWS's public parameters have no account in their ARN.
    // An AMI in a private parameter needs that parameter's ARN added here.
    { actions: ["ssm:GetParameters"], resources: ["arn:aws:ssm:*::parameter/aws/service/*"] },
    // Run Command: on this deployment's instances (SSM evaluates the instance's tags as
    // ssm:resourceTag), with the one AWS-owned document the code sends.
    {
      actions: ["ssm:SendCommand"],
      resources: [EC2_INSTANCES],
      conditions: [ownTag("ssm:resourceTag")],
    },
    {
      actions: ["ssm:SendCommand"],
      resources: [`arn:aws:ssm:*::document/${RUN_SHELL_DOCUMENT}`],
    },
    // No resource-level permissions exist for these four: "*" only.
    {
      actions: [
        "ssm:GetCommandInvocation",
        "ssm:CancelCommand",
        "ssm:DescribeInstanceInformation",
        "ssm:ListCommands",
      ],
      resources: ["*"],
    },
    // Plugin archives: put, and the presigned GET (signed with the function's credentials, so
    // the function needs s3:GetObject). Objects of the staging bucket only.
    { actions: ["s3:PutObject", "s3:GetObject"], resources: [t.stagingObjectsArn] },
  ];
}

/** Every action the catalogue grants. */
export function catalogueActions(): string[] {
  const placeholder: PermissionTargets = {
    deploymentId: "x",
    stagingObjectsArn: "x",
    instanceRoleArn: "x",
    securityGroupArn: "x",
  };
  return [...new Set(permissionCatalogue(placeholder).flatMap((s) => s.actions))].sort();
}

/** Actions `lib/` can send that no function is granted: none. */
export const UNGRANTED_LIB_ACTIONS: readonly string[] = [];

/**
 * The API: launch, terminate, console, status, plugin install, uninstall and download, and the
 * commands API (send, read, cancel, the output's ranged GET and presigned URL) all start from a
 * request. It never looks up lost commands in SSM's history (the sweep does).
 */
export const API_ACTIONS: readonly string[] = catalogueActions().filter(
  (a) => !UNGRANTED_LIB_ACTIONS.includes(a) && a !== "ssm:ListCommands",
);

/**
 * The sweep: re-driven launches (RunInstances with its implicit CreateTags, PassRole and the AMI
 * parameter), the running check, ClientToken lookups and SSM pings (launch, readiness, liveness,
 * orphans), termination (removal, orphans), stops and starts (idle auto-stop, and re-driving
 * stops and starts EC2 did not act on), and plugin operations that outlived their request:
 * reading their commands, finding a command whose SendCommand answer was lost in SSM's history
 * (ListCommands), and sending a program again (never sent, or a restart's re-apply) with the
 * staged archive presigned (s3:GetObject). It never reads consoles or puts to the staging
 * bucket.
 */
export const SWEEP_ACTIONS: readonly string[] = [
  "ec2:CreateTags",
  "ec2:DescribeInstances",
  "ec2:RunInstances",
  "ec2:StartInstances",
  "ec2:StopInstances",
  "ec2:TerminateInstances",
  "iam:PassRole",
  "s3:GetObject",
  "ssm:DescribeInstanceInformation",
  "ssm:GetCommandInvocation",
  "ssm:GetParameters",
  "ssm:ListCommands",
  "ssm:SendCommand",
];

/**
 * What the workspace instances' own role may do besides AmazonSSMManagedInstanceCore: the SSM
 * agent uploads a command's output with the instance's credentials, so the role needs
 * `s3:PutObject` where SendCommand's OutputS3KeyPrefix points — the `commands/` prefix of the
 * staging bucket and nothing else (no read, no other prefix: plugin archives stay the API's).
 * `commandOutputObjectsArn` is `arn:aws:s3:::<bucket>/commands/*`.
 */
export function instanceRoleStatements<R>(commandOutputObjectsArn: R): PermissionStatement<R>[] {
  return [{ actions: ["s3:PutObject"], resources: [commandOutputObjectsArn] }];
}

/**
 * The EC2-event function: the running check (DescribeInstances, with the `client-token` filter
 * for a lost launch's adoption) and the SSM pings readiness and liveness read. It only records
 * what the check confirms; every call that changes an instance stays the sweep's.
 */
export const EC2_EVENT_ACTIONS: readonly string[] = [
  "ec2:DescribeInstances",
  "ssm:DescribeInstanceInformation",
];

/**
 * The catalogue's statements cut down to `actions`; statements left with no action are dropped.
 * @throws Error when an action has no statement (a permission nobody defined).
 */
export function statementsFor<R>(
  actions: readonly string[],
  targets: PermissionTargets<R>,
): PermissionStatement<R | string>[] {
  const catalogue = permissionCatalogue(targets);
  const granted = new Set(catalogue.flatMap((s) => s.actions));
  const missing = actions.filter((a) => !granted.has(a));
  if (missing.length > 0) throw new Error(`no statement grants ${missing.join(", ")}`);
  const wanted = new Set(actions);
  return catalogue
    .map((s) => ({ ...s, actions: s.actions.filter((a) => wanted.has(a)) }))
    .filter((s) => s.actions.length > 0);
}
