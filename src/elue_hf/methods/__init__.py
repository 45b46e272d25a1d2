"""What ELUE knows of the package's own methods: the one place where the benchmark meets HashEE, LPT,
int8 and exported bundles.

The ELUE core (:mod:`elue_hf.elue.tasks`, ``data``, ``flops``, ``submission``, ``score``) knows no method of this
package; these modules map a method's run onto it:

- :mod:`.hashee_flops`: HashEE's token-level FLOPs rule (active tokens per layer -> ``(m,n,d)`` layers);
- :mod:`.hashee_points`: a HashEE classifier's one operating point and its prediction file;
- :mod:`.lpt_flops`: the late prompt's FLOPs (generator + ``n + l`` tokens above the prompt layer);
- :mod:`.lpt_points`: an LPT adapter's static points, parameters and prediction files;
- :mod:`.int8_points`: int8 next to fp32 at every operating point (``elue-hf evaluate --quantize int8``);
- :mod:`.bundles`: an ``elue-hf export`` bundle run by ONNX Runtime at ELUE's operating points.
"""
