import { COMMAND_OUTPUT_PREFIX, instanceRoleStatements } from "./permissions.js";
import { stagingBucket } from "./storage.js";

/**
 * What workspace instances run with: an instance role that SSM can manage the instance through
 * (AmazonSSMManagedInstanceCore) and that may put commands' output under the staging bucket's
 * `commands/` prefix — nothing else of S3: instances fetch plugins through presigned URLs —, its
 * instance profile, and a security group without inbound rules.
 *
 * Network: the account's default VPC and its default subnets (one per availability zone, public
 * IPs on launch). Instances need outbound HTTPS to the SSM endpoints, the image registry, S3 and
 * PLATFORM_URL; a dedicated `sst.aws.Vpc` with private subnets would add NAT costs for no
 * inbound exposure saved, since nothing may connect in anyway.
 */
const defaultVpc = aws.ec2.getVpcOutput({ default: true });

/** The default subnets of the default VPC; RunInstances spreads workspaces over them. */
export const workspaceSubnetIds = aws.ec2.getSubnetsOutput({
  filters: [
    { name: "vpc-id", values: [defaultVpc.id] },
    { name: "default-for-az", values: ["true"] },
  ],
}).ids;

export const workspaceSecurityGroup = new aws.ec2.SecurityGroup("WorkspaceSecurityGroup", {
  description: "Workspace instances: no inbound; outbound for SSM, images, S3 and the API",
  vpcId: defaultVpc.id,
  ingress: [],
  // Terraform/Pulumi drop the default allow-all egress rule unless it is declared.
  egress: [
    {
      description: "All outbound",
      protocol: "-1",
      fromPort: 0,
      toPort: 0,
      cidrBlocks: ["0.0.0.0/0"],
      ipv6CidrBlocks: ["::/0"],
    },
  ],
});

export const workspaceInstanceRole = new aws.iam.Role("WorkspaceInstanceRole", {
  description: "Workspace instances: managed through SSM Run Command",
  assumeRolePolicy: aws.iam.assumeRolePolicyForPrincipal({ Service: "ec2.amazonaws.com" }),
});

new aws.iam.RolePolicyAttachment("WorkspaceInstanceSsmCore", {
  role: workspaceInstanceRole.name,
  policyArn: $interpolate`arn:${aws.getPartitionOutput().partition}:iam::aws:policy/AmazonSSMManagedInstanceCore`,
});

// The SSM agent uploads SendCommand's OutputS3BucketName/KeyPrefix output with the instance's
// own credentials, so the instance profile's role needs the S3 permission, not the caller
// (docs.aws.amazon.com/systems-manager/latest/userguide/setup-instance-permissions.html).
new aws.iam.RolePolicy("WorkspaceInstanceCommandOutput", {
  role: workspaceInstanceRole.name,
  policy: $jsonStringify({
    Version: "2012-10-17",
    Statement: instanceRoleStatements(
      $interpolate`${stagingBucket.arn}/${COMMAND_OUTPUT_PREFIX}*`,
    ).map((s) => ({ Effect: "Allow", Action: s.actions, Resource: s.resources })),
  }),
});

export const workspaceInstanceProfile = new aws.iam.InstanceProfile("WorkspaceInstanceProfile", {
  role: workspaceInstanceRole.name,
});
