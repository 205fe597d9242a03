fn main() {
    let path = std::env::args().nth(1).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let g = runtime::preprocess::decode(&bytes).unwrap();
    let ink = runtime::preprocess::ink::find(&g).unwrap();
    println!(
        "threshold {} bbox {:?} size {:?}",
        ink.threshold,
        ink.bbox,
        g.dimensions()
    );
    ink.ink.save("/tmp/d_ink.png").unwrap();
}
