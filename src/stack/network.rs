//! Where the relay tasks run: a VPC and its subnets (the default VPC unless `--vpc`/`--subnets`),
//! and the relay's security group, which lets in exactly TCP 443 (HTTPS: WHIP and the web app)
//! and the one UDP port all WebRTC media uses.

use std::collections::BTreeSet;

use aws_sdk_ec2::types::{Filter, IpPermission, IpRange, Ipv6Range, ResourceType, Tag, TagSpecification};

use super::{Change, Found, Mode, Names, Observed, TAG_KEY, tagged};
use crate::aws::Aws;
use crate::error::{AwsError, AwsResultExt};

/// The VPC and subnets the service runs in.
#[derive(Debug, Clone)]
pub struct Placement {
    pub vpc_id: String,
    pub subnets: Vec<String>,
}

fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

/// Finds the default VPC and its default subnets, or checks the ones the user named.
pub async fn placement(aws: &Aws, vpc: Option<&str>, subnets: &[String]) -> Result<Placement, AwsError> {
    let vpc_id = match vpc {
        Some(id) => id.to_owned(),
        None => {
            let vpcs = aws.ec2.describe_vpcs().filters(filter("is-default", "true")).send().await.on("default VPC", "ec2:DescribeVpcs")?;
            vpcs.vpcs().first().and_then(|v| v.vpc_id()).map(str::to_owned).ok_or_else(|| {
                AwsError::new(
                    "default VPC",
                    "ec2:DescribeVpcs",
                    "NoDefaultVpc",
                    format!(
                        "region {} has no default VPC: create one (`aws ec2 create-default-vpc`) or pass --vpc and --subnets",
                        aws.region
                    ),
                )
            })?
        }
    };
    if !subnets.is_empty() {
        return Ok(Placement { vpc_id, subnets: subnets.to_vec() });
    }
    let resource = format!("subnets of {vpc_id}");
    let mut request = aws.ec2.describe_subnets().filters(filter("vpc-id", &vpc_id));
    if vpc.is_none() {
        request = request.filters(filter("default-for-az", "true"));
    }
    let found = request.send().await.on(&resource, "ec2:DescribeSubnets")?;
    let mut ids: Vec<String> = found.subnets().iter().filter_map(|s| s.subnet_id()).map(str::to_owned).collect();
    ids.sort();
    if ids.is_empty() {
        return Err(AwsError::new(resource, "ec2:DescribeSubnets", "NoSubnets", "the VPC has no subnets to run tasks in: pass --subnets"));
    }
    Ok(Placement { vpc_id, subnets: ids })
}

/// One ingress permission, flattened: protocol, port range, source CIDR.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Ingress {
    protocol: String,
    from: i32,
    to: i32,
    cidr: String,
}

impl Ingress {
    fn describe(&self) -> String {
        let ports = if self.from == self.to { self.from.to_string() } else { format!("{}-{}", self.from, self.to) };
        format!("{}/{ports} from {}", self.protocol, self.cidr)
    }

    fn permission(&self) -> IpPermission {
        let builder = IpPermission::builder().ip_protocol(&self.protocol).from_port(self.from).to_port(self.to);
        if self.cidr.contains(':') {
            builder.ipv6_ranges(Ipv6Range::builder().cidr_ipv6(&self.cidr).build()).build()
        } else {
            builder.ip_ranges(IpRange::builder().cidr_ip(&self.cidr).build()).build()
        }
    }
}

const ANYWHERE: [&str; 2] = ["0.0.0.0/0", "::/0"];

fn wanted(udp_port: u16) -> BTreeSet<Ingress> {
    let https = ANYWHERE.iter().map(|cidr| Ingress { protocol: "tcp".into(), from: 443, to: 443, cidr: (*cidr).into() });
    https.chain(media(udp_port)).collect()
}

/// The rules that open the WebRTC media port.
fn media(udp_port: u16) -> impl Iterator<Item = Ingress> {
    let port = i32::from(udp_port);
    ANYWHERE.into_iter().map(move |cidr| Ingress { protocol: "udp".into(), from: port, to: port, cidr: cidr.into() })
}

fn flatten(permissions: &[IpPermission]) -> BTreeSet<Ingress> {
    let mut rules = BTreeSet::new();
    for p in permissions {
        let protocol = p.ip_protocol().unwrap_or("-1").to_owned();
        let (from, to) = (p.from_port().unwrap_or(-1), p.to_port().unwrap_or(-1));
        let v4 = p.ip_ranges().iter().filter_map(|r| r.cidr_ip());
        let v6 = p.ipv6_ranges().iter().filter_map(|r| r.cidr_ipv6());
        let groups = p.user_id_group_pairs().iter().filter_map(|g| g.group_id());
        let lists = p.prefix_list_ids().iter().filter_map(|l| l.prefix_list_id());
        for cidr in v4.chain(v6).chain(groups).chain(lists) {
            rules.insert(Ingress { protocol: protocol.clone(), from, to, cidr: cidr.to_owned() });
        }
    }
    rules
}

struct LiveGroup {
    id: String,
    tagged: bool,
    ingress: Vec<IpPermission>,
}

async fn read(aws: &Aws, names: &Names, vpc_id: Option<&str>) -> Result<Option<LiveGroup>, AwsError> {
    let resource = label(names);
    let mut request = aws.ec2.describe_security_groups().filters(filter("group-name", &names.security_group));
    if let Some(vpc) = vpc_id {
        request = request.filters(filter("vpc-id", vpc));
    }
    let found = request.send().await.on(&resource, "ec2:DescribeSecurityGroups")?;
    // Prefer the tagged one when another VPC holds a look-alike.
    let groups = found.security_groups();
    let pick =
        groups.iter().find(|g| tagged(g.tags().iter().filter_map(|t| Some((t.key()?, t.value()?))), names)).or_else(|| groups.first());
    Ok(pick.map(|g| LiveGroup {
        id: g.group_id().unwrap_or_default().to_owned(),
        tagged: tagged(g.tags().iter().filter_map(|t| Some((t.key()?, t.value()?))), names),
        ingress: g.ip_permissions().to_vec(),
    }))
}

/// Creates the group or restores its ingress rules; returns its id (`None` only in a dry run
/// that would create it).
/// Makes the group open exactly TCP 443 and `udp_port`, except that the media port running tasks
/// still use (`in_use_udp`, when it differs) stays open until they are replaced: see
/// [`retire_media_port`].
pub async fn ensure_security_group(
    aws: &Aws,
    names: &Names,
    placement: &Placement,
    udp_port: u16,
    in_use_udp: Option<u16>,
    mode: Mode,
) -> Result<(Change, Option<String>), AwsError> {
    let resource = label(names);
    let want = wanted(udp_port);
    let kept: BTreeSet<Ingress> = in_use_udp.filter(|p| *p != udp_port).map(media).into_iter().flatten().collect();
    let (change, id, have) = match read(aws, names, Some(&placement.vpc_id)).await? {
        None => {
            if mode == Mode::DryRun {
                return Ok((Change::Created, None));
            }
            let created = aws
                .ec2
                .create_security_group()
                .group_name(&names.security_group)
                .description(format!("ivs-relay of ivsctl stack {}: HTTPS and WebRTC media", names.stack))
                .vpc_id(&placement.vpc_id)
                .tag_specifications(
                    TagSpecification::builder()
                        .resource_type(ResourceType::SecurityGroup)
                        .tags(Tag::builder().key(TAG_KEY).value(names.tag_value()).build())
                        .build(),
                )
                .send()
                .await
                .on(&resource, "ec2:CreateSecurityGroup")?;
            (Change::Created, created.group_id().unwrap_or_default().to_owned(), BTreeSet::new())
        }
        Some(live) if !live.tagged => return Err(super::not_ours(&resource, &names.stack)),
        Some(live) => (Change::Unchanged, live.id, flatten(&live.ingress)),
    };
    let extra: Vec<&Ingress> = have.difference(&want).filter(|r| !kept.contains(r)).collect();
    let kept: Vec<&Ingress> = have.intersection(&kept).collect();
    let missing: Vec<&Ingress> = want.difference(&have).collect();
    if mode == Mode::Apply {
        if !extra.is_empty() {
            aws.ec2
                .revoke_security_group_ingress()
                .group_id(&id)
                .set_ip_permissions(Some(extra.iter().map(|r| r.permission()).collect()))
                .send()
                .await
                .on(&resource, "ec2:RevokeSecurityGroupIngress")?;
        }
        if !missing.is_empty() {
            aws.ec2
                .authorize_security_group_ingress()
                .group_id(&id)
                .set_ip_permissions(Some(missing.iter().map(|r| r.permission()).collect()))
                .send()
                .await
                .on(&resource, "ec2:AuthorizeSecurityGroupIngress")?;
        }
    }
    let change = match change {
        Change::Created => Change::Created,
        _ => Change::from_differences(
            extra
                .iter()
                .map(|r| format!("removed ingress {}", r.describe()))
                .chain(missing.iter().map(|r| format!("added ingress {}", r.describe())))
                .chain(kept.iter().map(|r| format!("kept ingress {} until the relay tasks roll out", r.describe())))
                .collect(),
        ),
    };
    Ok((change, Some(id)))
}

/// Closes a media port the tasks no longer use, once a rollout to another one is done.
pub async fn retire_media_port(aws: &Aws, names: &Names, placement: &Placement, udp_port: u16, mode: Mode) -> Result<Change, AwsError> {
    let Some(live) = read(aws, names, Some(&placement.vpc_id)).await?.filter(|live| live.tagged) else { return Ok(Change::Unchanged) };
    let stale: Vec<Ingress> = media(udp_port).filter(|r| flatten(&live.ingress).contains(r)).collect();
    if mode == Mode::Apply && !stale.is_empty() {
        aws.ec2
            .revoke_security_group_ingress()
            .group_id(&live.id)
            .set_ip_permissions(Some(stale.iter().map(Ingress::permission).collect()))
            .send()
            .await
            .on(&label(names), "ec2:RevokeSecurityGroupIngress")?;
    }
    Ok(Change::from_differences(stale.iter().map(|r| format!("removed ingress {}", r.describe())).collect()))
}

fn label(names: &Names) -> String {
    format!("security group {}", names.security_group)
}

/// Deletes the group if it is this stack's. ENIs of stopping tasks hold it for a while after the
/// service is gone, so `DependencyViolation` is waited out.
pub async fn remove_security_group(aws: &Aws, names: &Names, mode: Mode) -> Result<Change, AwsError> {
    let resource = label(names);
    Found::of(read(aws, names, None).await?, |live| live.tagged)
        .remove(mode, async |live| {
            crate::wait::retrying(&["DependencyViolation"], crate::wait::DRAIN, || {
                aws.ec2.delete_security_group().group_id(&live.id).send()
            })
            .await
            .or_missing(&["InvalidGroup.NotFound"], &resource, "ec2:DeleteSecurityGroup")?;
            Ok(())
        })
        .await
}

pub async fn observe_security_group(aws: &Aws, names: &Names) -> Result<Observed, AwsError> {
    Ok(Found::of(read(aws, names, None).await?, |live| live.tagged).observe(|live| {
        let rules: Vec<String> = flatten(&live.ingress).iter().map(Ingress::describe).collect();
        Observed::present(Some(live.id), format!("ingress {}", rules.join(", ")))
    }))
}
