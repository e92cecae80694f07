//! The retailer's brand: `theme.json` and a logo from a folder (see
//! `assets/brand/README.md`), checked field by field, into the `Theme` global.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::{KioskWindow, Theme};
use slint::ComponentHandle;

/// `theme.json`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Brand {
    pub brand_name: Option<String>,
    pub tagline: Option<String>,
    pub logo: Option<String>,
    #[serde(default)]
    pub colors: Colors,
    /// The folder the file was read from (logo paths are relative to it).
    #[serde(skip)]
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Colors {
    pub background: Option<String>,
    pub surface: Option<String>,
    pub surface_alt: Option<String>,
    pub primary: Option<String>,
    pub on_primary: Option<String>,
    pub text: Option<String>,
    pub on_background: Option<String>,
    pub muted: Option<String>,
    pub accent: Option<String>,
    pub warning: Option<String>,
}

/// `#rrggbb` to a colour.
pub fn parse_color(text: &str) -> Option<slint::Color> {
    let hex = text.strip_prefix('#')?;
    if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let value = u32::from_str_radix(hex, 16).ok()?;
    Some(slint::Color::from_rgb_u8(
        (value >> 16) as u8,
        (value >> 8) as u8,
        value as u8,
    ))
}

impl Brand {
    /// Reads `dir/theme.json`; every colour and the logo are checked here,
    /// so a bad file stops the kiosk at start with the field named.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join("theme.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading the brand file {}", path.display()))?;
        let mut brand: Brand = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid brand file", path.display()))?;
        brand.dir = dir.to_owned();
        for (name, value) in brand.colors.named() {
            if let Some(value) = value
                && parse_color(value).is_none()
            {
                bail!(
                    "{}: colors.{name} {value:?} is not a colour #rrggbb",
                    path.display()
                );
            }
        }
        if let Some(logo) = brand.logo_path()
            && !logo.is_file()
        {
            bail!(
                "{}: the logo {} does not exist",
                path.display(),
                logo.display()
            );
        }
        Ok(brand)
    }

    pub fn logo_path(&self) -> Option<PathBuf> {
        self.logo.as_ref().map(|logo| self.dir.join(logo))
    }

    /// Sets the `Theme` global (colours not given keep the UI's defaults).
    pub fn apply(&self, ui: &KioskWindow) -> Result<()> {
        let theme = ui.global::<Theme>();
        if let Some(name) = &self.brand_name {
            theme.set_brand_name(name.into());
        }
        if let Some(tagline) = &self.tagline {
            theme.set_tagline(tagline.into());
        }
        if let Some(path) = self.logo_path() {
            let image = slint::Image::load_from_path(&path)
                .map_err(|_| anyhow::anyhow!("the logo {} cannot be read", path.display()))?;
            theme.set_logo(image);
        }
        let c = &self.colors;
        let set = |value: &Option<String>, setter: &dyn Fn(slint::Color)| {
            if let Some(color) = value.as_deref().and_then(parse_color) {
                setter(color);
            }
        };
        set(&c.background, &|v| theme.set_background(v));
        set(&c.surface, &|v| theme.set_surface(v));
        set(&c.surface_alt, &|v| theme.set_surface_alt(v));
        set(&c.primary, &|v| theme.set_primary(v));
        set(&c.on_primary, &|v| theme.set_on_primary(v));
        set(&c.text, &|v| theme.set_text(v));
        set(&c.on_background, &|v| theme.set_on_background(v));
        set(&c.muted, &|v| theme.set_muted(v));
        set(&c.accent, &|v| theme.set_accent(v));
        set(&c.warning, &|v| theme.set_warning(v));
        Ok(())
    }
}

impl Colors {
    fn named(&self) -> [(&'static str, &Option<String>); 10] {
        [
            ("background", &self.background),
            ("surface", &self.surface),
            ("surface_alt", &self.surface_alt),
            ("primary", &self.primary),
            ("on_primary", &self.on_primary),
            ("text", &self.text),
            ("on_background", &self.on_background),
            ("muted", &self.muted),
            ("accent", &self.accent),
            ("warning", &self.warning),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_parse_strictly() {
        assert_eq!(
            parse_color("#e4572e"),
            Some(slint::Color::from_rgb_u8(0xe4, 0x57, 0x2e))
        );
        for bad in ["e4572e", "#e4572", "#e4572ez", "#12345678", "red"] {
            assert_eq!(parse_color(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_bad_brand_file_names_the_field() {
        let dir = tempfile::tempdir().expect("tempdir");
        let write =
            |text: &str| std::fs::write(dir.path().join("theme.json"), text).expect("write");
        write(r#"{"colors": {"primary": "orange"}}"#);
        let err = Brand::load(dir.path()).expect_err("bad colour").to_string();
        assert!(
            err.contains("colors.primary") && err.contains("orange"),
            "{err}"
        );
        write(r#"{"logo": "missing.svg"}"#);
        let err = Brand::load(dir.path()).expect_err("no logo").to_string();
        assert!(err.contains("missing.svg"), "{err}");
        write(r#"{"colours": {}}"#);
        let err = format!("{:#}", Brand::load(dir.path()).expect_err("unknown field"));
        assert!(err.contains("colours"), "{err}");
        write(r##"{"brand_name": "Corner Shop", "colors": {"primary": "#112233"}}"##);
        let brand = Brand::load(dir.path()).expect("good");
        assert_eq!(brand.brand_name.as_deref(), Some("Corner Shop"));
    }

    #[test]
    fn the_shipped_brand_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/brand");
        let brand = Brand::load(&dir).expect("assets/brand/theme.json");
        assert!(brand.logo_path().is_some_and(|p| p.is_file()));
    }
}
