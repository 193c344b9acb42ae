//! `ivsctl policy`: the least-privilege IAM policy for deploying and operating one stack, as a
//! JSON document to attach to the deployer (see README, "Permissions"). Needs no AWS access.

use super::Target;
use crate::permissions::{self, policy};
use crate::stack::Names;

pub fn run(target: &Target, account: Option<&str>) -> anyhow::Result<()> {
    let names = Names::new(&target.stack);
    let region = target.connection.region.as_deref().unwrap_or("*");
    let partition = match region {
        r if r.starts_with("cn-") => "aws-cn",
        r if r.starts_with("us-gov-") => "aws-us-gov",
        _ => "aws",
    };
    let document = policy(&permissions::Target { names: &names, partition, region, account: account.unwrap_or("*") });
    println!("{}", serde_json::to_string_pretty(&document)?);
    Ok(())
}
