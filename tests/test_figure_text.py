"""The figures carry their labels as text drawn in the PNG (AlexNet §6.1, Figures 3 and 4)."""

import numpy as np

from keras_alexnet import figures

NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def inked(region) -> bool:
    """Text is there: the strip is not one flat colour and has dark pixels."""
    region = np.asarray(region, np.float32)
    return region.std() > 10 and (region.min(axis=-1) < 100).sum() > 10


def tinted(region, colour) -> int:
    """How many pixels are clearly of `colour`'s hue (its strongest channel, well above the weakest):
    antialiased text seldom has the exact colour."""
    region = np.asarray(region, np.int32)
    return int(((region.argmax(axis=-1) == int(np.argmax(colour)))
                & (region.max(axis=-1) - region.min(axis=-1) > 40)).sum())


def test_captions_are_text_and_differ_with_the_words():
    a, b = figures.caption(["Sneaker"], 96, 12), figures.caption(["Bag"], 96, 12)
    assert inked(a) and inked(b) and not np.array_equal(a, b)
    assert (figures.caption([""], 96, 12) == figures.WHITE).all()
    long = "German shepherd, German shepherd dog, German police dog, alsatian"
    assert figures.fit_text(long, 12, 96).endswith("...") and figures.font(12).getlength(figures.fit_text(long, 12, 96)) <= 96


def test_top5_panels_write_the_labels_and_probabilities_under_each_image():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (40, 40, 3)).astype(np.float32) for _ in range(2)]
    classes = np.array([[7, 5, 9, 0, 1], [8, 4, 6, 2, 3]])
    probs = np.array([[0.6, 0.2, 0.1, 0.05, 0.05], [0.5, 0.3, 0.1, 0.06, 0.04]])
    size = 96
    panel = figures.top5_panels(images, classes, probs, [7, 2], size=size, columns=2, class_names=NAMES)
    caption = figures.top5_caption(probs[0], classes[0], 7, NAMES, size)
    text = figures.caption_size(size)
    verdict = text + 3 + 2
    title = verdict + text + 1 + 3 + 2
    assert tinted(caption[:verdict], figures.GREEN) > 10  # "correct", in green
    assert inked(caption[verdict:title])  # the correct label
    rank_rows = [title + r * (text + 3 + 5) for r in range(5)]
    for top in rank_rows:  # each of the five: name and probability, then its bar
        assert inked(caption[top:top + text + 3])
    reds = np.all(caption == figures.RED, axis=-1)
    assert reds[rank_rows[0]:rank_rows[1]].any() and not reds[rank_rows[1]:].any()  # first rank is correct: red
    second = panel[size:size + caption.shape[0], size + 8:]
    assert inked(second) and not np.array_equal(second, caption)
    assert np.all(second == figures.RED, axis=-1)[title:].sum() > 0  # correct label 2 at rank 4: marked red
    assert tinted(second[:verdict], figures.ORANGE) > 10 and not tinted(second[:verdict], figures.GREEN)


def test_neighbor_grid_names_each_image_with_its_distance_under_a_title():
    queries = [np.full((30, 30, 3), 200.0) for _ in range(2)]
    found = [[np.full((30, 30, 3), 150.0) for _ in range(3)] for _ in range(2)]
    distances = [[1.0, 2.0, 3.0], [1.0, 2.5, 3.0]]
    title = ["Nearest neighbours by the Euclidean distance d of fc7 activations", "queries: validation images"]
    grid = figures.neighbor_grid(queries, found, 64, ["Bag", "Coat"], [["Bag", "Bag", "Shirt"], ["Coat"] * 3],
                                 distances, title)
    size = max(12, min(16, grid.shape[1] // 32))
    lines = [part for line in title for part in figures.wrap_text(line, size, grid.shape[1] - 2)]
    heading = figures.caption(lines, grid.shape[1], size)
    np.testing.assert_array_equal(grid[:heading.shape[0]], heading)
    text = figures.caption_size(64) + 3
    header = text + 2
    top = heading.shape[0] + header + 2
    assert tinted(grid[heading.shape[0]:top, :64], figures.BLUE) > 10  # "query" in blue
    row = 64 + 2 * text + 2
    cells = {}
    for r in range(2):
        under = top + r * (row + 2) + 64
        for column in range(4):
            left = column * 66 + (4 + 2 if column else 0)
            cells[r, column] = grid[under:under + 2 * text, left:left + 64]
            if column:
                assert inked(cells[r, column][:text]), (r, column)  # the class name
            assert inked(cells[r, column][text:]) == (column > 0), (r, column)  # a neighbour's distance
        assert tinted(cells[r, 0][:text], figures.BLUE) > 10  # the query's name in blue
    # The name line and the distance line each follow their own value.
    np.testing.assert_array_equal(cells[0, 1][:text], cells[0, 2][:text])  # "Bag", "Bag"
    assert not np.array_equal(cells[0, 1][text:], cells[0, 2][text:])  # d = 1.00, d = 2.00
    assert not np.array_equal(cells[0, 1][:text], cells[1, 1][:text])  # "Bag", "Coat"
    np.testing.assert_array_equal(cells[0, 1][text:], cells[1, 1][text:])  # d = 1.00 both


def test_conv1_figure_titles_the_towers():
    rng = np.random.default_rng(1)
    kernels = [rng.normal(size=(11, 11, 3, 12)) for _ in range(2)]
    figure = figures.conv1_figure(kernels)  # 12 kernels a tower: 4x3 grids of 11x11, 97 px side by side
    assert figure.shape[1] >= 600
    scale = figure.shape[1] // (2 * (4 * 12 - 1) + 3)
    title = figure[:figure.shape[0] - scale * (3 * 12 - 1)]
    half = title.shape[1] // 2
    assert inked(title[:, :half]) and inked(title[:, half:])  # "Tower 1" over the left, "Tower 2" over the right
    assert not np.array_equal(title[:, :half], title[:, half:half * 2])


def test_augmented_grid_is_titled_and_clipped_to_the_display_range():
    rng = np.random.default_rng(2)
    images = rng.uniform(-50, 300, (4, 20, 20, 3))
    grid = figures.augmented_grid(images, columns=4, size=32)
    body = grid[-32:]
    assert inked(grid[:grid.shape[0] - 32])
    np.testing.assert_array_equal(body[:, :32], figures.tile(np.clip(images[0], 0, 255), 32))


def test_augmented_grid_title_names_the_augmentations_applied():
    from pipelines.input_config import InputConfig
    from pipelines.preview import augmentations

    plain = augmentations(InputConfig(data_dir="d", image_size=64, pca_jitter_std=0.0))
    assert plain == ["random 64px crop", "flip", "no colour jitter"]
    vgg = augmentations(InputConfig(data_dir="d", image_size=224, pca_jitter_std=0.1, scale_jitter=(256, 512)))
    assert vgg == ["scale jitter S in [256, 512]", "random 224px crop", "flip", "PCA colour jitter (std 0.1)"]
    images = np.random.default_rng(3).uniform(0, 255, (4, 20, 20, 3))
    titles = {}
    for name, applied in (("plain", plain), ("vgg", vgg)):
        grid = figures.augmented_grid(images, columns=4, size=96, applied=applied)
        width = grid.shape[1]
        expected = f"4 training inputs ({', '.join(applied)}), before mean subtraction"
        lines = figures.wrap_text(expected, 11, width - 2)
        assert " ".join(lines) == expected  # wrapped, nothing cut
        titles[name] = grid[:grid.shape[0] - 96]
        np.testing.assert_array_equal(titles[name], figures.caption(lines, width, 11))
    assert titles["plain"].shape != titles["vgg"].shape or not np.array_equal(titles["plain"], titles["vgg"])
