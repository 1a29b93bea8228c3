"""The Density evolution page under Streamlit's AppTest."""

import json

from app_tools import open_app, open_page


def test_density_page_renders_and_reuses_its_frames():
    at = open_app("pages/density.py")
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    charts = at.get("plotly_chart")
    assert len(charts) == 2
    spec = json.loads(charts[0].proto.spec)
    assert len(spec["frames"]) == at.slider(key="density_frames").value
    assert spec["layout"]["sliders"] and spec["layout"]["updatemenus"]
    metrics = {m.label: m.value for m in at.metric}
    assert set(metrics) >= {"Mass in view (lowest frame)", "NFE (all frames)", "Compute time"}
    assert {b.key for b in at.main.get("download_button")} == {"density_gif", "density_html"}
    # switching overlays and the colour scale reuses the cached frames (same compute time shown)
    at.radio(key="density_scale").set_value("log")
    at.checkbox(key="density_show_arrows").check()
    at.run()
    assert not at.exception and not at.error
    assert {m.label: m.value for m in at.metric}["Compute time"] == metrics["Compute time"]
    # a bad picked point is reported, not a crash
    at.radio(key="density_path_mode").set_value("Points I pick (at t = 1)")
    at.run()
    at.text_input(key="density_points").set_value("1, x")
    at.run()
    assert not at.exception
    assert any("points:" in e.value for e in at.error)



def test_density_side_by_side_from_a_shared_address():
    at = open_page(
        "pages/density.py",
        {"model": "8gaussians (pretrained)", "density_frames": "3", "density_resolution": "24", "density_tolerance": "0.001",
         "density_scale": "log", "density_show_paths": "false", "density_compare": "moons (pretrained)"},
    )
    assert at.slider(key="density_frames").value == 3 and at.slider(key="density_resolution").value == 24
    assert at.radio(key="density_scale").value == "log" and not at.checkbox(key="density_show_paths").value
    assert at.selectbox(key="density_compare").value == "moons (pretrained)"
    animations = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart") if json.loads(chart.proto.spec).get("frames")]
    assert [spec["layout"]["title"]["text"].split(" · ")[0] for spec in animations] == ["8gaussians (pretrained)", "moons (pretrained)"]
    assert all(len(spec["frames"]) == 3 for spec in animations)
    # the two models' frames differ: moons is not 8gaussians
    assert animations[0]["frames"][-1]["data"][0]["z"] != animations[1]["frames"][-1]["data"][0]["z"]
