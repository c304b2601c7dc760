/**
 * The serial console of a simulated instance: what an Amazon Linux 2023 boot prints, with
 * cloud-init running the user data. Only the shape matters (people grep consoles for
 * cloud-init lines and their own script's output), so the kernel lines are fixed.
 */

/** EC2 returns "the most recent 64 KB of console output" (API_GetConsoleOutput.html). */
export const consoleLimitBytes = 64 * 1024;

const kernel = "6.1.115-126.197.amzn2023.x86_64";
const cloudInit = "Cloud-init v. 22.2.2";

function stamp(seconds: number): string {
  return `[${seconds.toFixed(6).padStart(12, " ")}]`;
}

function rfc2822(ms: number): string {
  return new Date(ms).toUTCString().replace("GMT", "+0000");
}

export function bootLines(
  instanceId: string,
  instanceType: string,
  privateIp: string,
  at: number,
): string {
  const host = `ip-${privateIp.replaceAll(".", "-")}`;
  return [
    `${stamp(0)} Linux version ${kernel} (mockbuild@${host}) (gcc (GCC) 11.4.1 20230605) #1 SMP PREEMPT_DYNAMIC`,
    `${stamp(0)} Command line: BOOT_IMAGE=(hd0,gpt1)/boot/vmlinuz-${kernel} root=UUID=localcloud ro console=tty0 console=ttyS0,115200n8 nvme_core.io_timeout=4294967295`,
    `${stamp(0)} DMI: Amazon EC2 ${instanceType}/, BIOS 1.0 10/16/2017`,
    `${stamp(0.412345)} clocksource: Switched to clocksource kvm-clock`,
    `${stamp(1.203311)} systemd[1]: Detected virtualization amazon.`,
    `${stamp(1.204112)} systemd[1]: Set hostname to <${host}.ec2.internal>.`,
    `${stamp(2.871002)} cloud-init[1502]: ${cloudInit} running 'init' at ${rfc2822(at)}. Up 2.87 seconds.`,
    `${stamp(2.9)} cloud-init[1502]: ci-info: | ens5 | True | ${privateIp} | 255.255.240.0 | global |`,
    `${stamp(3.514)} systemd[1]: Started amazon-ssm-agent.service - amazon-ssm-agent.`,
    "",
    "Amazon Linux 2023.6.20241121",
    `Kernel ${kernel} on an x86_64 (-)`,
    "",
    `${host} login: `,
    `${stamp(4.01)} cloud-init[2101]: ${cloudInit} running 'modules:final' at ${rfc2822(at)}. Up 4.01 seconds.`,
    `${stamp(4.02)} instance ${instanceId} booted`,
    "",
  ].join("\n");
}

export function userDataFinished(output: string, exitCode: number | null, at: number): string {
  const lines = output.length > 0 && !output.endsWith("\n") ? `${output}\n` : output;
  const failure =
    exitCode === 0
      ? ""
      : `cloud-init[2101]: util.py[WARNING]: Failed running /var/lib/cloud/instance/scripts/part-001 [${exitCode ?? "killed"}]\n` +
        "cloud-init[2101]: cc_scripts_user.py[WARNING]: Failed to run module scripts-user (scripts in /var/lib/cloud/instance/scripts)\n";
  return `${lines}${failure}cloud-init[2101]: ${cloudInit} finished at ${rfc2822(at)}. Datasource DataSourceEc2Local.  Up 9.38 seconds\n`;
}

export function noUserData(at: number): string {
  return `cloud-init[2101]: ${cloudInit} finished at ${rfc2822(at)}. Datasource DataSourceEc2Local.  Up 4.52 seconds\n`;
}

/** Keep the tail, as EC2 does. */
export function capConsole(text: string): string {
  const buf = Buffer.from(text, "utf8");
  if (buf.byteLength <= consoleLimitBytes) return text;
  return buf.subarray(buf.byteLength - consoleLimitBytes).toString("utf8");
}
