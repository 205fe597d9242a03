//! Seeded photos of MNIST digits as people take them: dark ink on paper, large and anywhere on
//! the page, with each of the troubles a phone camera brings, on its own or all together.
//! The same seed gives the same bytes.

use std::io::Cursor;

use image::{DynamicImage, GrayImage, ImageFormat, Luma, Rgb, RgbImage};
use imageproc::distance_transform::Norm;
use imageproc::geometric_transformations::{rotate_about_center, Border, Interpolation};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Normal};

/// One trouble a photo can have, or none, or all of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trouble {
    /// Dark ink on white paper, large, off-centre, PNG.
    Clean,
    /// Sensor grain: Gaussian noise with σ of 10 to 25 grey levels.
    Grain,
    /// A lighting gradient across the page and a soft shadow.
    Lighting,
    /// Cream, grey or bluish paper and blue or brown ink.
    Tint,
    /// JPEG at quality 30 to 90.
    Jpeg,
    /// The digit is 5–15 % of a large page's height, anywhere on it.
    Small,
    /// Rotated by up to ±15°.
    Rotation,
    /// A thick marker.
    Thick,
    /// A thin, light pencil.
    Thin,
    /// Specks of dirt scattered over the page.
    Specks,
    /// All of the above at once (pen and page size drawn at random).
    Combined,
}

impl Trouble {
    /// Every kind, in the order reports list them.
    pub const ALL: [Trouble; 11] = [
        Trouble::Clean,
        Trouble::Grain,
        Trouble::Lighting,
        Trouble::Tint,
        Trouble::Jpeg,
        Trouble::Small,
        Trouble::Rotation,
        Trouble::Thick,
        Trouble::Thin,
        Trouble::Specks,
        Trouble::Combined,
    ];

    /// Lower-case name, as reports print it.
    pub fn name(self) -> &'static str {
        match self {
            Trouble::Clean => "clean",
            Trouble::Grain => "grain",
            Trouble::Lighting => "lighting",
            Trouble::Tint => "tint",
            Trouble::Jpeg => "jpeg",
            Trouble::Small => "small",
            Trouble::Rotation => "rotation",
            Trouble::Thick => "thick pen",
            Trouble::Thin => "thin pencil",
            Trouble::Specks => "specks",
            Trouble::Combined => "combined",
        }
    }

    /// What the photos of this kind have, for the report.
    pub fn what(self) -> &'static str {
        match self {
            Trouble::Clean => {
                "dark ink on white paper, digit 35–60 % of the page height, anywhere, PNG"
            }
            Trouble::Grain => "Gaussian noise, σ 10–25 grey levels per channel",
            Trouble::Lighting => "gradient across the page (30–55 % darker) and a soft shadow",
            Trouble::Tint => "cream, grey or bluish paper; blue or brown ink",
            Trouble::Jpeg => "JPEG quality 30–90",
            Trouble::Small => "digit 5–15 % of a 1600–2400 px page",
            Trouble::Rotation => "rotated ±15°",
            Trouble::Thick => "marker strokes about 1.75× MNIST's width",
            Trouble::Thin => "pencil strokes about ½ MNIST's width, light grey",
            Trouble::Specks => "15–60 dark specks, 1–4 px, off the digit",
            Trouble::Combined => "all of the above together",
        }
    }
}

/// How one photo looks; drawn from the seed for its trouble.
#[derive(Clone, Debug)]
struct Look {
    page: (u32, u32),
    digit_height: f32,
    rotation: f32,
    pen: Pen,
    paper: [f32; 3],
    ink: [f32; 3],
    gradient: f32,
    shadow: f32,
    grain: f32,
    jpeg: Option<u8>,
    specks: u32,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Pen {
    Normal,
    Thick,
    Thin,
}

impl Look {
    fn draw(trouble: Trouble, rng: &mut StdRng) -> Look {
        let all = trouble == Trouble::Combined;
        let is = |t: Trouble| all || trouble == t;
        let (w, h) = (rng.random_range(480..800), rng.random_range(360..600));
        let small = is(Trouble::Small) && (!all || rng.random_bool(0.5));
        let mut look = Look {
            page: (w, h),
            digit_height: rng.random_range(0.35..0.6),
            rotation: 0.0,
            pen: Pen::Normal,
            paper: [rng.random_range(235.0..252.0); 3],
            ink: [rng.random_range(10.0..50.0); 3],
            gradient: 0.0,
            shadow: 0.0,
            grain: 0.0,
            jpeg: None,
            specks: 0,
        };
        if small {
            let w = rng.random_range(1600..2400);
            look.page = (w, w * 3 / 4);
            look.digit_height = rng.random_range(0.05..0.15);
        }
        if is(Trouble::Rotation) {
            look.rotation = rng.random_range(-15.0f32..15.0).to_radians();
        }
        if is(Trouble::Thick) || is(Trouble::Thin) {
            look.pen = match (all, trouble) {
                (false, Trouble::Thick) => Pen::Thick,
                (false, _) => Pen::Thin,
                _ => [Pen::Normal, Pen::Thick, Pen::Thin][rng.random_range(0..3)],
            };
        }
        if look.pen == Pen::Thin {
            look.ink = [rng.random_range(70.0..120.0); 3];
        }
        if is(Trouble::Tint) {
            look.paper = match rng.random_range(0..3) {
                0 => [245.0, 236.0, 200.0],
                1 => [rng.random_range(170.0..205.0); 3],
                _ => [215.0, 228.0, 245.0],
            };
            let dark = look.ink[0];
            look.ink = if rng.random_bool(0.5) {
                [dark * 0.6, dark * 0.9, dark + 90.0]
            } else {
                [dark + 60.0, dark + 30.0, dark]
            };
        }
        if is(Trouble::Lighting) {
            look.gradient = rng.random_range(0.3..0.55);
            look.shadow = rng.random_range(0.2..0.4);
        }
        if is(Trouble::Grain) {
            look.grain = rng.random_range(10.0..25.0);
        }
        if is(Trouble::Jpeg) {
            look.jpeg = Some(rng.random_range(30..=90));
        }
        if is(Trouble::Specks) {
            look.specks = rng.random_range(15..=60);
        }
        look
    }
}

/// A photo of the 28×28 MNIST digit `digit` with `trouble`, encoded as PNG or JPEG; the same
/// `seed` gives the same bytes.
pub fn photo(digit: &[u8], trouble: Trouble, seed: u64) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(seed);
    let look = Look::draw(trouble, &mut rng);
    let alpha = pen_alpha(digit, &look);
    let (pw, ph) = look.page;
    let (aw, ah) = alpha.dimensions();
    let ox = rng.random_range(0..=pw.saturating_sub(aw));
    let oy = rng.random_range(0..=ph.saturating_sub(ah));
    let light = Lighting::draw(&look, &mut rng);
    let noise = Normal::new(0.0f32, look.grain.max(1e-6)).unwrap();
    let specks = specks(&look, (ox, oy, aw, ah), &mut rng);
    let page = RgbImage::from_fn(pw, ph, |x, y| {
        let mut a = if x >= ox && y >= oy && x < ox + aw && y < oy + ah {
            alpha.get_pixel(x - ox, y - oy).0[0] as f32 / 255.0
        } else {
            0.0
        };
        if specks
            .iter()
            .any(|&(sx, sy, r)| (x as f32 - sx).hypot(y as f32 - sy) <= r)
        {
            a = 1.0;
        }
        let l = light.at(x as f32 / pw as f32, y as f32 / ph as f32);
        Rgb(std::array::from_fn(|c| {
            let v = (look.paper[c] * (1.0 - a) + look.ink[c] * a) * l;
            let g = if look.grain > 0.0 {
                noise.sample(&mut rng)
            } else {
                0.0
            };
            (v + g).round().clamp(0.0, 255.0) as u8
        }))
    });
    encode(page, look.jpeg)
}

/// The digit drawn with the pen at its size on the page: 0 = paper, 255 = full ink.
fn pen_alpha(digit: &[u8], look: &Look) -> GrayImage {
    // MNIST's digits fill 20 of 28 rows.
    let side = ((look.digit_height * look.page.1 as f32) * 28.0 / 20.0)
        .round()
        .max(28.0) as u32;
    let small = GrayImage::from_raw(28, 28, digit.to_vec()).expect("a 28×28 digit");
    let big = image::imageops::resize(&small, side, side, image::imageops::FilterType::CatmullRom);
    let big = if look.rotation != 0.0 {
        rotate_about_center(
            &big,
            look.rotation,
            Interpolation::Bilinear,
            Border::Constant(Luma([0])),
        )
    } else {
        big
    };
    // A pen lays ink where the drawn stroke is: sharp edges at the stroke's half-intensity.
    let level = if look.pen == Pen::Thin { 200 } else { 128 };
    let mask = GrayImage::from_fn(side, side, |x, y| {
        Luma([if big.get_pixel(x, y).0[0] > level {
            255
        } else {
            0
        }])
    });
    let stroke = side as f32 * 20.0 / 28.0 * 0.125;
    let mask = match look.pen {
        Pen::Thick => {
            imageproc::morphology::dilate(&mask, Norm::L2, (stroke * 0.375).round() as u8)
        }
        Pen::Thin | Pen::Normal => mask,
    };
    // A little softness at the edges, as a lens gives.
    imageproc::filter::gaussian_blur_f32(&mask, (side as f32 / 200.0).max(0.5))
}

/// Page lighting: a linear gradient in a random direction and a soft-edged shadow.
struct Lighting {
    gradient: f32,
    direction: (f32, f32),
    shadow: f32,
    edge: (f32, f32, f32),
}

impl Lighting {
    fn draw(look: &Look, rng: &mut StdRng) -> Lighting {
        let angle = rng.random_range(0.0f32..std::f32::consts::TAU);
        let edge_angle = rng.random_range(0.0f32..std::f32::consts::TAU);
        Lighting {
            gradient: look.gradient,
            direction: (angle.cos(), angle.sin()),
            shadow: look.shadow,
            edge: (
                edge_angle.cos(),
                edge_angle.sin(),
                rng.random_range(-0.3..0.3),
            ),
        }
    }

    /// Brightness factor at (u, v) in page units.
    fn at(&self, u: f32, v: f32) -> f32 {
        let (u, v) = (u - 0.5, v - 0.5);
        let along = (u * self.direction.0 + v * self.direction.1) / std::f32::consts::SQRT_2 + 0.5;
        let d = u * self.edge.0 + v * self.edge.1 - self.edge.2;
        // A penumbra a tenth of the page wide.
        let shade = (d / 0.1 + 0.5).clamp(0.0, 1.0);
        (1.0 - self.gradient * along) * (1.0 - self.shadow * shade)
    }
}

/// Specks of dirt anywhere on the page outside the digit's square: (x, y, radius).
fn specks(look: &Look, digit: (u32, u32, u32, u32), rng: &mut StdRng) -> Vec<(f32, f32, f32)> {
    let (ox, oy, w, h) = digit;
    let mut out = Vec::new();
    while (out.len() as u32) < look.specks {
        let (x, y) = (
            rng.random_range(0..look.page.0),
            rng.random_range(0..look.page.1),
        );
        let r = rng.random_range(1.0f32..4.0);
        let inside = x + 6 >= ox && y + 6 >= oy && x < ox + w + 6 && y < oy + h + 6;
        if !inside {
            out.push((x as f32, y as f32, r));
        }
    }
    out
}

fn encode(page: RgbImage, jpeg: Option<u8>) -> Vec<u8> {
    let mut bytes = Vec::new();
    match jpeg {
        Some(q) => {
            let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, q);
            DynamicImage::ImageRgb8(page)
                .write_with_encoder(encoder)
                .expect("JPEG in memory");
        }
        None => DynamicImage::ImageRgb8(page)
            .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
            .expect("PNG in memory"),
    }
    bytes
}

/// How a classifier did on one kind of photo.
#[derive(Clone, Debug)]
pub struct Row {
    /// The kind of photo.
    pub trouble: Trouble,
    /// Photos read right.
    pub correct: usize,
    /// Photos tried.
    pub total: usize,
    /// The photos read wrong: (MNIST test index, label, answer, photo seed). `None` as the
    /// answer means the picture was refused.
    pub wrong: Vec<(usize, u8, Option<u8>, u64)>,
}

impl Row {
    /// Share read right.
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.total.max(1) as f64
    }
}

/// The MNIST test digits the photos are made of: `count` indices drawn by `seed`.
pub fn digits(test: &mnist::Dataset, count: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..test.len()).collect();
    mnist::SplitMix::new(seed).shuffle(&mut order);
    order.truncate(count);
    order
}

/// The seed of the photo of test digit `index` with `trouble`.
pub fn photo_seed(trouble: Trouble, index: usize, seed: u64) -> u64 {
    let kind = Trouble::ALL.iter().position(|&t| t == trouble).unwrap_or(0) as u64;
    seed ^ (kind << 40) ^ index as u64
}

/// Photographs `count` test digits with each trouble, frames them with the runtime's
/// preprocessing (on all cores) and reads them with `classifier`.
pub fn evaluate(
    classifier: &runtime::classifier::Classifier,
    test: &mnist::Dataset,
    count: usize,
    seed: u64,
) -> anyhow::Result<Vec<Row>> {
    let indices = digits(test, count, seed);
    let mut rows = Vec::new();
    for trouble in Trouble::ALL {
        let framed = runtime::preprocess::on_all_cores(&indices, |&i| {
            let bytes = photo(test.image(i), trouble, photo_seed(trouble, i, seed));
            runtime::preprocess::decode(&bytes)
                .and_then(|g| runtime::preprocess::frame(&g))
                .ok()
        });
        let pixels: Vec<u8> = framed
            .iter()
            .flat_map(|f| f.unwrap_or([0; mnist::PIXELS]))
            .collect();
        let scores = classifier
            .plan(indices.len())?
            .run(classifier.scale_pixels(&pixels))?;
        let mut row = Row {
            trouble,
            correct: 0,
            total: indices.len(),
            wrong: Vec::new(),
        };
        for ((&i, f), s) in indices.iter().zip(&framed).zip(scores.chunks(10)) {
            let answer = f.map(|_| runtime::classifier::argmax(s) as u8);
            if answer == Some(test.label(i)) {
                row.correct += 1;
            } else {
                row.wrong
                    .push((i, test.label(i), answer, photo_seed(trouble, i, seed)));
            }
        }
        rows.push(row);
    }
    Ok(rows)
}
