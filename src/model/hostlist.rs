//! Slurm's hostlist syntax: `n[0-3,7]`, `gpu[00-15]`, `a1,b[1-2]`, `r[1-2]n[1-3]`.

/// Expands a hostlist expression into names, in order. Zero-padded ranges keep their width.
pub fn expand(expr: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for item in split_top_level(expr)? {
        if item.is_empty() {
            return Err(format!("empty name in hostlist '{expr}'"));
        }
        let mut names = vec![String::new()];
        let mut rest = item.as_str();
        while !rest.is_empty() {
            match rest.find('[') {
                None => {
                    for n in &mut names {
                        n.push_str(rest);
                    }
                    rest = "";
                }
                Some(open) => {
                    let close = rest[open..]
                        .find(']')
                        .map(|c| open + c)
                        .ok_or_else(|| format!("unclosed '[' in hostlist '{expr}'"))?;
                    let prefix = &rest[..open];
                    let values = expand_ranges(&rest[open + 1..close], expr)?;
                    let mut next = Vec::with_capacity(names.len() * values.len());
                    for n in &names {
                        for v in &values {
                            next.push(format!("{n}{prefix}{v}"));
                        }
                    }
                    names = next;
                    rest = &rest[close + 1..];
                }
            }
        }
        out.extend(names);
    }
    Ok(out)
}

/// Splits at commas that are not inside brackets.
pub(crate) fn split_top_level(expr: &str) -> Result<Vec<String>, String> {
    let mut items = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in expr.trim().chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            _ => {}
        }
        if !(0..=1).contains(&depth) {
            return Err(format!("unbalanced brackets in hostlist '{expr}'"));
        }
        if c == ',' && depth == 0 {
            items.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    if depth != 0 {
        return Err(format!("unclosed '[' in hostlist '{expr}'"));
    }
    items.push(cur);
    Ok(items.into_iter().map(|s| s.trim().to_string()).collect())
}

fn expand_ranges(body: &str, expr: &str) -> Result<Vec<String>, String> {
    let bad = || format!("bad range '[{body}]' in hostlist '{expr}'");
    let mut out = Vec::new();
    for part in body.split(',') {
        let part = part.trim();
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if a.is_empty()
            || !a.bytes().all(|c| c.is_ascii_digit())
            || !b.bytes().all(|c| c.is_ascii_digit())
            || b.is_empty()
        {
            return Err(bad());
        }
        let width = if a.len() > 1 && a.starts_with('0') {
            a.len()
        } else {
            0
        };
        let lo: u64 = a.parse().map_err(|_| bad())?;
        let hi: u64 = b.parse().map_err(|_| bad())?;
        if hi < lo || hi - lo > 1_000_000 {
            return Err(bad());
        }
        for v in lo..=hi {
            out.push(format!("{v:0width$}"));
        }
    }
    Ok(out)
}

/// Compresses names into a hostlist: runs of the same prefix and digit width with consecutive
/// numbers become ranges (`n[0-3,7]`). Names keep their given order within a prefix group;
/// groups appear in the order their first name appears.
pub fn compress<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    // (prefix, width) → numbers; names without a numeric suffix stand alone. A zero-padded
    // number fixes its group's width; an unpadded one joins a group it prints the same in.
    let mut groups: Vec<(String, usize, Vec<u64>)> = Vec::new();
    let mut plain: Vec<String> = Vec::new();
    let mut order: Vec<(bool, usize)> = Vec::new();
    for name in names {
        let digits = name.bytes().rev().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 18 {
            plain.push(name.to_string());
            order.push((false, plain.len() - 1));
            continue;
        }
        let (prefix, num) = name.split_at(name.len() - digits);
        let padded = num.len() > 1 && num.starts_with('0');
        let v: u64 = num.parse().unwrap_or(0);
        let fits = |g: &(String, usize, Vec<u64>)| {
            g.0 == prefix
                && if padded {
                    g.1 == num.len()
                } else {
                    g.1 <= num.len()
                }
        };
        match groups.iter().position(fits) {
            Some(i) => groups[i].2.push(v),
            None => {
                groups.push((
                    prefix.to_string(),
                    if padded { num.len() } else { 0 },
                    vec![v],
                ));
                order.push((true, groups.len() - 1));
            }
        }
    }
    let mut parts = Vec::new();
    for (is_group, i) in order {
        if !is_group {
            parts.push(plain[i].clone());
            continue;
        }
        let (prefix, width, nums) = &groups[i];
        let mut nums = nums.clone();
        nums.sort_unstable();
        nums.dedup();
        if nums.len() == 1 {
            parts.push(format!("{prefix}{:0w$}", nums[0], w = *width));
            continue;
        }
        let mut ranges = Vec::new();
        let mut k = 0;
        while k < nums.len() {
            let start = nums[k];
            while k + 1 < nums.len() && nums[k + 1] == nums[k] + 1 {
                k += 1;
            }
            let end = nums[k];
            ranges.push(if start == end {
                format!("{start:0w$}", w = *width)
            } else {
                format!("{start:0w$}-{end:0w$}", w = *width)
            });
            k += 1;
        }
        parts.push(format!("{prefix}[{}]", ranges.join(",")));
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_ranges_lists_and_padding() {
        assert_eq!(expand("n[0-3,7]").unwrap(), ["n0", "n1", "n2", "n3", "n7"]);
        assert_eq!(expand("gpu[08-10]").unwrap(), ["gpu08", "gpu09", "gpu10"]);
        assert_eq!(expand("a1,b[1-2]").unwrap(), ["a1", "b1", "b2"]);
        assert_eq!(
            expand("r[1-2]n[1-2]").unwrap(),
            ["r1n1", "r1n2", "r2n1", "r2n2"]
        );
        assert_eq!(expand("solo").unwrap(), ["solo"]);
        assert!(expand("n[1-").is_err());
        assert!(expand("n[3-1]").is_err());
        assert!(expand("n[a-b]").is_err());
        assert!(expand("n1,,n2").is_err());
    }

    #[test]
    fn compresses_back() {
        let names = ["n0", "n1", "n2", "n3", "n7"];
        assert_eq!(compress(names), "n[0-3,7]");
        assert_eq!(compress(["gpu08", "gpu09", "gpu10"]), "gpu[08-10]");
        assert_eq!(compress(["n5"]), "n5");
        assert_eq!(compress(["login", "n1", "n2"]), "login,n[1-2]");
        assert_eq!(compress(["n08", "n09", "n10", "n11"]), "n[08-11]");
        assert_eq!(compress(["n9", "n10", "n11"]), "n[9-11]");
        for e in ["n[0-3,7]", "a[00-03],b[1-2,5]"] {
            let x = expand(e).unwrap();
            assert_eq!(compress(x.iter().map(String::as_str)), e);
        }
    }
}
